"""Every service's OpenAPI document lists every response and error of every API route,
errors as RFC 9457 problems, and how to authenticate."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from shared.problems import PROBLEM_JSON
from shared.settings import Settings

SERVICES = ["intake", "scoring", "handoff", "feedback"]


def document(service: str) -> dict[str, Any]:
    app = importlib.import_module(f"services.{service}.app").create(Settings())
    return app.openapi()  # type: ignore[no-any-return]


def api_operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, operations in doc["paths"].items()
        if path.startswith("/v1/")
        for method, operation in operations.items()
    ]


@pytest.mark.parametrize("service", SERVICES)
def test_every_api_route_documents_the_errors_every_route_can_answer(service: str) -> None:
    operations = api_operations(document(service))
    assert operations
    for method, path, operation in operations:
        statuses = set(operation["responses"])
        expected = {"401", "403", "422", "429", "503"} | ({"413"} if method == "post" else set())
        if "requestBody" in operation:  # a body FastAPI cannot parse (not UTF-8, a 5000-digit number)
            expected |= {"400", "413"}
        assert expected <= statuses, f"{method.upper()} {path} lacks {sorted(expected - statuses)}"
        assert any(s.startswith("2") for s in statuses), f"{method.upper()} {path} has no success answer"


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_documents_the_422_of_a_value_that_breaks_a_request_rule(service: str) -> None:
    """Any header with a NUL is refused on any route, /healthz included (shared.request_rules)."""
    for path, operations in document(service)["paths"].items():
        for method, operation in operations.items():
            assert "422" in operation["responses"], f"{method.upper()} {path}"
            assert list(operation["responses"]["422"]["content"]) == [PROBLEM_JSON]


@pytest.mark.parametrize("service", SERVICES)
def test_errors_are_documented_as_problem_details(service: str) -> None:
    doc = document(service)
    assert {"type", "title", "status", "errors"} <= set(doc["components"]["schemas"]["Problem"]["properties"])
    for method, path, operation in api_operations(doc):
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")):
                assert list(response["content"]) == [PROBLEM_JSON], f"{method.upper()} {path} {status}"
                assert response["description"], f"{method.upper()} {path} {status}"
    assert "HTTPValidationError" not in doc["components"]["schemas"]


@pytest.mark.parametrize("service", SERVICES)
def test_api_routes_say_how_to_authenticate(service: str) -> None:
    doc = document(service)
    assert set(doc["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    for _, _, operation in api_operations(doc):
        assert operation["security"] == [{"bearer": []}, {"apiKey": []}]


def test_the_handoff_decisions_document_their_conflicts_and_stale_versions() -> None:
    doc = document("handoff")
    accept = doc["paths"]["/v1/handoffs/{handoff_id}/accept"]["post"]["responses"]
    assert {"200", "404", "409", "412"} <= set(accept)


@pytest.mark.parametrize("service", ["handoff", "feedback"])
def test_the_webhook_lifecycle_documents_its_answers(service: str) -> None:
    paths = document(service)["paths"]
    one = "/v1/webhooks/{subscription_id}"
    expected = {
        ("/v1/webhooks", "post"): {"201", "409", "422"},
        ("/v1/webhooks", "get"): {"200"},
        (one, "get"): {"200", "404"},
        (one, "patch"): {"200", "404", "422"},
        (one, "delete"): {"204", "404"},
        (f"{one}/rotate-secret", "post"): {"200", "404"},
        (f"{one}/deliveries", "get"): {"200", "404"},
    }
    for (path, method), statuses in expected.items():
        assert statuses <= set(paths[path][method]["responses"]), f"{method.upper()} {path}"
