"""Never a 500: whatever a client sends, the answer is a 4xx problem naming the field and the
rule it broke. Each test is a class of input a fuzzer or a hand probe once turned into a 500.

The four services run in this process once for the module, against the session's Kafka and
Postgres (a database of the module's own).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.conftest import isolated_settings
from tests.support import ADMIN, RunningService, running

Services = dict[str, RunningService]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def api(
    kafka_bootstrap: str, postgres_admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Services]:
    settings = await isolated_settings(kafka_bootstrap, postgres_admin_url, tmp_path_factory.mktemp("data"))
    async with AsyncExitStack() as stack:
        yield {
            name: await stack.enter_async_context(running(name, settings))
            for name in ("intake", "scoring", "handoff", "feedback")
        }


def refused(answer: httpx.Response, field: str, rule: str, status: int = 422) -> None:
    """The answer is a problem whose errors name `field` and `rule`."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    errors = {(e["field"], e["rule"]) for e in answer.json().get("errors", [])}
    assert (field, rule) in errors, answer.json()


def cursor_of(*parts: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode()


def raw_json(text: str) -> dict[str, Any]:
    """Send `text` as it is (json= would re-encode escapes such as a lone surrogate)."""
    return {"content": text.encode(), "headers": {**ADMIN, "Content-Type": "application/json"}}


HANDOFF = "/v1/handoffs/h-unknown"


async def test_nul_is_refused_in_queries_paths_headers_cursors_and_bodies(api: Services) -> None:
    scoring, handoff, feedback = api["scoring"].client, api["handoff"].client, api["feedback"].client
    refused(await handoff.get("/v1/handoffs", params={"policy": "\x00"}, headers=ADMIN), "policy", "no_nul")
    refused(await handoff.get("/v1/handoffs", params={"owner": "a\x00b"}, headers=ADMIN), "owner", "no_nul")
    refused(await scoring.get("/v1/leads", params={"stage": "mql\x00"}, headers=ADMIN), "stage", "no_nul")
    refused(await scoring.get("/v1/leads/l-%00", headers=ADMIN), "lead_id", "no_nul")
    refused(await handoff.get(f"{HANDOFF}%00/history", headers=ADMIN), "handoff_id", "no_nul")
    refused(await feedback.get("/v1/webhooks/%00", headers=ADMIN), "subscription_id", "no_nul")
    key = {**ADMIN, "Idempotency-Key": "k\x00"}
    refused(await handoff.post(f"{HANDOFF}/accept", headers=key), "idempotency-key", "no_nul")
    cursor = cursor_of(10, "l-\x00")
    refused(await scoring.get("/v1/leads", params={"cursor": cursor}, headers=ADMIN), "cursor", "cursor")
    cursor = cursor_of("2026-01-01T00:00:00+00:00", "h-\x00")
    refused(await handoff.get("/v1/handoffs", params={"cursor": cursor}, headers=ADMIN), "cursor", "cursor")
    for action, body, field in (
        ("reject", {"reason": "other", "note": "n\x00"}, "note"),
        ("reject", {"reason": "\x00"}, "reason"),
        ("reassign", {"owner": "maya\x00"}, "owner"),
        ("qualify", {"details": {"budget\x00": "50k"}}, "details.budget\\x00"),
    ):
        refused(await handoff.post(f"{HANDOFF}/{action}", json=body, headers=ADMIN), field, "no_nul")


async def test_unpaired_surrogates_are_refused_in_bodies(api: Services) -> None:
    handoff = api["handoff"].client
    note = await handoff.post(f"{HANDOFF}/reject", **raw_json('{"reason": "other", "note": "\\ud800"}'))
    refused(note, "note", "no_surrogates")
    key = await handoff.post(f"{HANDOFF}/qualify", **raw_json('{"details": {"\\udfff": 1}}'))
    refused(key, "details.\\udfff", "no_surrogates")
    paired = await handoff.post(
        f"{HANDOFF}/reject", **raw_json('{"reason": "other", "note": "\\ud83d\\ude00"}')
    )
    assert paired.status_code == 404  # an emoji, escaped as a surrogate pair, is text like any other


async def test_integers_beyond_their_columns_are_refused(api: Services) -> None:
    scoring, handoff = api["scoring"].client, api["handoff"].client
    for value in (2**31, -(2**31) - 1, 10**30):
        answer = await scoring.get("/v1/leads", params={"min_score": value}, headers=ADMIN)
        refused(answer, "min_score", "less_than_equal" if value > 0 else "greater_than_equal")
    assert (await scoring.get("/v1/leads", params={"min_score": 2**31 - 1}, headers=ADMIN)).status_code == 200
    for score in (2**31, 2**64):
        cursor = cursor_of(score, "l-1")
        refused(await scoring.get("/v1/leads", params={"cursor": cursor}, headers=ADMIN), "cursor", "cursor")
    big = 2**64
    qualify = await handoff.post(f"{HANDOFF}/qualify", json={"details": {"budget": big}}, headers=ADMIN)
    refused(qualify, "details.budget", "int64")
    nested = {"details": {"bant": [{"budget": -(2**63) - 1}]}}
    refused(
        await handoff.post(f"{HANDOFF}/qualify", json=nested, headers=ADMIN), "details.bant.0.budget", "int64"
    )
    fits = await handoff.post(f"{HANDOFF}/qualify", json={"details": {"budget": 2**63 - 1}}, headers=ADMIN)
    assert fits.status_code == 404
    digits = await handoff.post(
        f"{HANDOFF}/qualify", **raw_json('{"details": {"budget": ' + "9" * 5000 + "}}")
    )
    refused(digits, "body", "json_invalid", status=400)


@pytest.mark.parametrize("depth", [33, 255, 999, 100_000])
async def test_json_nested_deeper_than_32_levels_is_refused(api: Services, depth: int) -> None:
    deep = '{"details": ' + '{"a": ' * (depth - 1) + "1" + "}" * depth
    answer = await api["handoff"].client.post(f"{HANDOFF}/qualify", **raw_json(deep))
    refused(answer, "body", "max_depth")
    batch = '{"events": [' + "[" * depth + "]" * depth + "]}"
    refused(await api["intake"].client.post("/v1/events/batch", **raw_json(batch)), "body", "max_depth")


async def test_32_levels_and_brackets_inside_strings_are_fine(api: Services) -> None:
    details = json.dumps({"details": {"n": "[" * 100, **json.loads('{"a": ' * 30 + "1" + "}" * 30)}})
    answer = await api["handoff"].client.post(f"{HANDOFF}/qualify", **raw_json(details))
    assert answer.status_code == 404


async def test_feedback_windows_past_the_maximum_are_refused_before_any_arithmetic(api: Services) -> None:
    feedback = api["feedback"].client
    for window in ("99999999999d", "3651d", "9999999w", "0d"):
        answer = await feedback.get("/v1/metrics/return-rate", params={"window": window}, headers=ADMIN)
        refused(answer, "window", "duration")
    long = await feedback.get("/v1/metrics/return-rate", params={"window": "9" * 5000 + "d"}, headers=ADMIN)
    refused(long, "window", "string_too_long")
    reach = {"window": "3650d", "step": "3650d", "points": 400}
    refused(
        await feedback.get("/v1/metrics/return-rate/series", params=reach, headers=ADMIN),
        "points",
        "series_reach",
    )
    step = await feedback.get(
        "/v1/metrics/return-rate/series", params={"step": "99999999999h"}, headers=ADMIN
    )
    refused(step, "step", "duration")


@pytest.mark.parametrize(
    "if_match", ['"99999999999999999999"', '"2147483648"', 'W/"x"', '"1_0"', "+1", '"1", "2"', " ", "\x00"]
)
async def test_a_garbage_if_match_is_refused(api: Services, if_match: str) -> None:
    answer = await api["handoff"].client.post(f"{HANDOFF}/accept", headers={**ADMIN, "If-Match": if_match})
    refused(
        answer, "if-match" if "\x00" in if_match else "If-Match", "no_nul" if "\x00" in if_match else "etag"
    )


async def test_instants_beyond_utc_are_refused(api: Services) -> None:
    handoff = api["handoff"].client
    answer = await handoff.get(
        "/v1/handoffs", params={"due_before": "0001-01-01T00:00:00+05:00"}, headers=ADMIN
    )
    refused(answer, "due_before", "value_error")
    cursor = cursor_of("9999-12-31T23:59:59-05:00", "h-1")
    refused(await handoff.get("/v1/handoffs", params={"cursor": cursor}, headers=ADMIN), "cursor", "cursor")


async def test_a_trace_id_that_is_not_a_plain_token_is_replaced_not_echoed(api: Services) -> None:
    scoring = api["scoring"].client
    answer = await scoring.get("/v1/leads", headers={**ADMIN, "X-Trace-Id": "t\x00\r\nSet-Cookie: x"})
    refused(answer, "x-trace-id", "no_nul")
    assert "\x00" not in answer.headers["x-trace-id"] and len(answer.headers["x-trace-id"]) <= 128
    kept = await scoring.get("/v1/leads", headers={**ADMIN, "X-Trace-Id": "req-42.a_b"})
    assert kept.headers["x-trace-id"] == "req-42.a_b"


async def test_a_chunked_body_over_the_limit_gets_413(api: Services) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"events": ['
        for _ in range(2000):
            yield b'{"padding": "' + b"x" * 1000 + b'"},'
        yield b"{}]}"

    headers = {**ADMIN, "Content-Type": "application/json"}
    answer = await api["intake"].client.post("/v1/events/batch", content=chunks(), headers=headers)
    assert "content-length" not in answer.request.headers
    assert answer.status_code == 413 and answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["max_bytes"] == 1_048_576
