"""Schemathesis against the OpenAPI document of each service: whatever it generates, the
service never answers a 5xx, and every answer is one its document lists, in the shape it
documents.

Each service runs as its own process (`leadflow serve`, as in production) on a local port,
against the session's Kafka and Postgres (a database of this module's own), and is called
with the admin key, so every operation is exercised past the key check. Per operation the
examples phase, the coverage phase (boundary values: empty, too long, out of range, NUL, the
wrong type, missing required parts) and `MAX_EXAMPLES` generated cases run, derandomized, so
a run is reproducible.

Checks on: `not_a_server_error`, `status_code_conformance`, `response_schema_conformance`,
`content_type_conformance`, `response_headers_conformance`, `negative_data_rejection`,
`missing_required_header`, `ignored_auth`, `unsupported_method`, `allow_header_conformance`.
`ignored_auth` probes an operation until it has refused a call without credentials and one
with invalid ones, once per run as schemathesis's own runner does, not after every 2xx; the
cases share one keep-alive session per service.
Checks off, and why:
- `positive_data_acceptance`: a case can be valid for the document and still rightly refused,
  e.g. text with NUL (422, `no_nul`: OpenAPI cannot say "no NUL" for a string), an id that
  does not exist (404), a decision the handoff's stage does not allow (409), a window the
  document cannot bound (`9999d`, 422).
- `use_after_free`, `ensure_resource_availability`, `object_level_authorization`: they judge
  sequences of calls (stateful testing), which this file does not run; the handoff API tests
  cover versions, visibility and deletion.
- `max_response_time` is not set: times on a shared 2-core machine say nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CheckContext
from schemathesis.specs.openapi.checks import ignored_auth
from schemathesis.transport.requests import ManagedCookiesSession

from tests.conftest import isolated_settings
from tests.support import ADMIN, eventually, service_ready, start_service

SERVICES = ("intake", "scoring", "handoff", "feedback")
ADMIN_KEY = ADMIN["Authorization"].removeprefix("Bearer ")
MAX_EXAMPLES = 100
DISABLED = (
    "positive_data_acceptance",
    "use_after_free",
    "ensure_resource_availability",
    "object_level_authorization",
)
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 12,
        # The admin key for both documented schemes, so `ignored_auth` can take it away.
        "auth": {"openapi": {"bearer": {"bearer": ADMIN_KEY}, "apiKey": {"api_key": ADMIN_KEY}}},
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
        "checks": {name: {"enabled": False} for name in DISABLED},
    }
)
FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(
    kafka_bootstrap: str, postgres_admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, str]]:
    """The URL of each service, running as its own process."""
    config = await isolated_settings(kafka_bootstrap, postgres_admin_url, tmp_path_factory.mktemp("data"))
    # The fuzzer sends thousands of calls with bad or missing keys from one address (the
    # `ignored_auth` check): that address's failed-authentication limit would soon answer
    # 429 to everything. Those limits are tested in test_keys_and_limits.py.
    unlimited = {"LEADFLOW_RATE_LIMIT_FAILED_AUTH": "1000000/minute"}
    processes = {name: start_service(name, config, **unlimited) for name in SERVICES}
    try:
        for _, url in processes.values():
            await eventually(lambda url=url: service_ready(url), timeout=90)  # type: ignore[misc]
        yield {name: url for name, (_, url) in processes.items()}
    finally:
        for process, _ in processes.values():
            process.terminate()
        for process, _ in processes.values():
            process.wait(timeout=30)


def auth_confirmed_once_per_operation(confirmed: set[str]) -> Any:
    """`ignored_auth`, with the memory schemathesis's own runner gives it: once an operation has
    refused a call without credentials and one with invalid ones, it is not probed again. Under
    pytest the check has no such memory and sends its three probes after every 2xx."""

    def ignored_auth_once(ctx: CheckContext, response: Any, case: schemathesis.Case) -> bool | None:
        ctx.auth_enforced_operations = confirmed
        return ignored_auth(ctx, response, case)

    return ignored_auth_once


AUTH_ONCE = {service: auth_confirmed_once_per_operation(set()) for service in SERVICES}


def call_and_validate(case: schemathesis.Case, http: ManagedCookiesSession, service: str) -> None:
    case.call_and_validate(
        session=http, excluded_checks=[ignored_auth], additional_checks=[AUTH_ONCE[service]]
    )


@pytest.fixture(scope="module")
def http() -> Iterator[ManagedCookiesSession]:
    """One keep-alive session for a module's cases, the one schemathesis's own runner uses
    (cookies dropped between requests, redirects followed on the same host only). Without it
    every case opens a connection of its own."""
    with ManagedCookiesSession() as session:
        yield session


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """Schemathesis 4.32's lazy schemas read `node._nodeid`, which pytest 9 no longer has."""
    request.node._nodeid = request.node.nodeid


def document_of(stack: dict[str, str], service: str) -> Any:
    return schemathesis.openapi.from_url(f"{stack[service]}/openapi.json", config=CONFIG)


@pytest.fixture(scope="module")
def intake_api(stack: dict[str, str]) -> Any:
    return document_of(stack, "intake")


@pytest.fixture(scope="module")
def scoring_api(stack: dict[str, str]) -> Any:
    return document_of(stack, "scoring")


@pytest.fixture(scope="module")
def handoff_api(stack: dict[str, str]) -> Any:
    return document_of(stack, "handoff")


@pytest.fixture(scope="module")
def feedback_api(stack: dict[str, str]) -> Any:
    return document_of(stack, "feedback")


intake = schemathesis.pytest.from_fixture("intake_api")
scoring = schemathesis.pytest.from_fixture("scoring_api")
handoff = schemathesis.pytest.from_fixture("handoff_api")
feedback = schemathesis.pytest.from_fixture("feedback_api")


@intake.parametrize()
@FUZZ
def test_intake_answers_as_documented_and_never_a_5xx(
    case: schemathesis.Case, http: ManagedCookiesSession
) -> None:
    call_and_validate(case, http, "intake")


@scoring.parametrize()
@FUZZ
def test_scoring_answers_as_documented_and_never_a_5xx(
    case: schemathesis.Case, http: ManagedCookiesSession
) -> None:
    call_and_validate(case, http, "scoring")


@handoff.parametrize()
@FUZZ
def test_handoff_answers_as_documented_and_never_a_5xx(
    case: schemathesis.Case, http: ManagedCookiesSession
) -> None:
    call_and_validate(case, http, "handoff")


@feedback.parametrize()
@FUZZ
def test_feedback_answers_as_documented_and_never_a_5xx(
    case: schemathesis.Case, http: ManagedCookiesSession
) -> None:
    call_and_validate(case, http, "feedback")
