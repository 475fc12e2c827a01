"""The OpenAPI document of every service, completed with what every API route can answer.

Routes declare their own outcomes (200, 404, 409, 412, ...). What the shared layers
answer — 401 and 403 from the API key check, 429 from its rate limits, 400 for a body
that cannot be parsed, 413 from the body limit, 503 when Kafka or Postgres is
unreachable, and 422 in problem+json rather than FastAPI's default, from any route (a
header may break a text rule) — is added here once, so the document lists every
response and error of every route.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from shared.problems import PROBLEM_JSON

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details. `errors` names each field and the rule it broke.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "default": "about:blank"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "rule", "message"],
                "properties": {
                    "field": {"type": "string", "description": "Dotted path into the request."},
                    "rule": {"type": "string", "description": "The rule it broke, e.g. `missing`."},
                    "message": {"type": "string"},
                },
            },
        },
    },
}

SHARED_ERRORS = {
    "401": "No API key, or an unknown or revoked one.",
    "403": "The key lacks the scope this call needs.",
    "429": "Over the key's rate limit (or too many failed authentications from this address); "
    "retry after the `Retry-After` seconds.",
    "503": "Kafka or Postgres is unreachable; retry after the `Retry-After` seconds.",
}
BODY_ERRORS = {"413": "The body is larger than the limit."}
PARSED_BODY_ERRORS = {"400": "The body cannot be parsed: not UTF-8, or a number too long to read."}
EVERY_ROUTE_ERRORS = {"422": "A field breaks a rule; `errors` names each field and rule."}
DESCRIPTIONS = {
    "404": "Not found (or not yours: ids of other reps' handoffs are not revealed).",
    "409": "The request conflicts with the resource's current state.",
    "412": "The `If-Match` version is stale.",
    "422": "A field breaks a rule; `errors` names each field and rule.",
}
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "An API key."},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


def complete_openapi(app: FastAPI, *, api_prefix: str = "/v1") -> None:
    """Make `app.openapi()` return the document with the shared errors and the key schemes."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            add_shared_errors(document, api_prefix=api_prefix)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def add_shared_errors(document: dict[str, Any], *, api_prefix: str) -> None:
    components = document.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    components["securitySchemes"] = SECURITY_SCHEMES
    problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in document.get("paths", {}).items():
        api = path.startswith(api_prefix)
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            errors = dict(EVERY_ROUTE_ERRORS)
            if api:
                operation["security"] = [{"bearer": []}, {"apiKey": []}]
                parsed = "requestBody" in operation
                errors |= SHARED_ERRORS | (
                    BODY_ERRORS if parsed or method in {"post", "put", "patch"} else {}
                )
                errors |= PARSED_BODY_ERRORS if parsed else {}
            for status, description in errors.items():
                responses.setdefault(status, {"description": description})
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    response["content"] = problem
                    if response.get("description") in (None, "", "Problem (application/problem+json)"):
                        response["description"] = DESCRIPTIONS.get(status, "A problem.")
                    if status == "422" and response.get("description") == "Validation Error":
                        response["description"] = DESCRIPTIONS["422"]
    schemas = components["schemas"]
    # FastAPI's own validation error shapes are never sent: 422s are problems.
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
