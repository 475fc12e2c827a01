"""RFC 9457 problem details: the one error shape of every leadflow API.

Each error names the field (`errors[].field`, a dotted path into the request)
and the rule it broke (`errors[].rule`). Domain exceptions are turned into
problems in one place per service; everything else is mapped here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from shared.field_errors import FieldError
from shared.logging import get_logger
from shared.outages import DependencyUnavailable, is_outage
from shared.request_rules import printable

__all__ = [
    "OUTAGES",
    "PROBLEM_JSON",
    "DependencyUnavailable",
    "FieldError",  # declared in shared.field_errors, which pure modules import without FastAPI
    "Problem",
    "install_problem_handlers",
    "invalid",
    "problem_response",
    "validation_errors",
]

PROBLEM_JSON = "application/problem+json"


# The error families an outage arrives as; `is_outage` tells which of them are one (503 with
# Retry-After) and which are a fault of ours (500). A Kafka error in a request is always a 503:
# the broker did not take the event, and the client may send it again.
OUTAGES: tuple[type[Exception], ...] = (DependencyUnavailable, OSError, PoolTimeout, DBAPIError, KafkaError)
log = get_logger(__name__)


@dataclass
class Problem(Exception):
    status: int
    title: str
    detail: str | None = None
    type: str = "about:blank"
    errors: list[FieldError] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = [e.as_dict() for e in self.errors]
        body.update(self.extra)
        return body


def unavailable(detail: str = "A dependency (Kafka or Postgres) is unreachable; retry shortly.") -> Problem:
    return Problem(status=503, title="Temporarily unavailable", detail=detail, headers={"Retry-After": "2"})


def problem_response(problem: Problem, instance: str | None = None) -> JSONResponse:
    return JSONResponse(
        problem.body(instance), status_code=problem.status, media_type=PROBLEM_JSON, headers=problem.headers
    )


def invalid(errors: list[FieldError], title: str = "The request is invalid", status: int = 422) -> Problem:
    first = errors[0]
    return Problem(
        status=status,
        title=title,
        detail=f"{first.field}: {first.message}"
        + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
        type="https://leadflow.dev/problems/validation",
        errors=errors,
    )


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [printable(str(p)) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:] or parts
    return ".".join(parts) or "body"


def validation_errors(exc: RequestValidationError) -> list[FieldError]:
    return [
        FieldError(
            field=_field_path(tuple(err.get("loc", ()))),
            rule=str(err.get("type")),
            message=printable(str(err.get("msg"))),
        )
        for err in exc.errors()
    ]


def _unreadable_body(exc: StarletteHTTPException) -> FieldError | None:
    """What made FastAPI answer 400 to a body it could not parse (it raises from the cause)."""
    if exc.status_code != 400 or exc.__cause__ is None:
        return None
    cause = exc.__cause__
    if isinstance(cause, UnicodeError):
        return FieldError("body", "utf8", "JSON must be encoded as UTF-8")
    if isinstance(cause, RecursionError):
        return FieldError("body", "max_depth", "JSON nests too deep")
    return FieldError("body", "json_invalid", printable(str(cause))[:200] or type(cause).__name__)


def _methods_of(request: Request) -> list[str]:
    """Every method the request's path answers: Starlette's 405 names only one route's, and a
    path such as `/v1/webhooks` is two routes (GET and POST)."""
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = (
            route.matches({**request.scope, "method": "GET"}) if hasattr(route, "matches") else (None, 0)
        )
        if match is not None and match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(invalid(validation_errors(exc)), request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        unreadable = _unreadable_body(exc)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_methods_of(request))
        problem = Problem(
            status=exc.status_code,
            title=str(exc.detail),
            headers=headers,
            errors=[unreadable] if unreadable else [],
        )
        return problem_response(problem, request.url.path)

    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        if not (is_outage(exc) or isinstance(exc, KafkaError)):
            log.exception("unhandled_error", path=request.url.path)
            return problem_response(Problem(status=500, title="Internal error"), request.url.path)
        log.warning("dependency_unavailable", path=request.url.path, error_type=type(exc).__name__)
        detail = str(exc) if isinstance(exc, DependencyUnavailable) and str(exc) else None
        return problem_response(unavailable(detail) if detail else unavailable(), request.url.path)

    for outage in OUTAGES:
        app.add_exception_handler(outage, _unavailable)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", path=request.url.path)
        return problem_response(Problem(status=500, title="Internal error"), request.url.path)
