"""intake: HTTP in, `lead.events` out. Validates against the tracking plan; holds no lead state."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from sqlalchemy import MetaData
from starlette.responses import Response
from starlette.types import Scope as AsgiScope

from services.intake import tracking_api
from services.intake.config_files import load_tracking_plan
from services.intake.domain import EventBatch, IntakeEvent
from services.intake.handlers import IntakeRuntime, accept
from services.intake.metrics import EVENT_PATHS, count_rejected, count_too_large, events_in
from services.intake.privacy import EventSealer
from services.intake.settings import IntakeSettings
from shared.auth import Principal, Scope, require
from shared.http import create_app, refuse_unstorable_parts
from shared.problems import FieldError, Problem, invalid, problem_response, validation_errors
from shared.request_rules import may_break_content_rules
from shared.runtime import ServiceSpec
from shared.settings import Settings, settings_as

__all__ = ["IntakeRuntime", "create"]

_WRITER = require(Scope.EVENTS_WRITE)
_authorize_writer = _WRITER.dependency
Writer = Annotated[Principal, _WRITER]


class Accepted(BaseModel):
    accepted: int
    event_ids: list[str]


async def _runtime(request: Request) -> IntakeRuntime:
    # async: a plain `def` dependency runs in the threadpool, a thread hop on every request
    runtime: IntakeRuntime = request.app.state.runtime
    if not runtime.started.is_set():
        raise Problem(
            status=503,
            title="Not ready",
            detail="intake is still connecting to Kafka",
            headers={"Retry-After": "1"},
        )
    return runtime


Runtime = Annotated[IntakeRuntime, Depends(_runtime)]


class EventRoute(APIRoute):
    """An event route that answers the common request without FastAPI's body and dependency
    machinery, which cost most of intake's CPU per event (`common_answer`). Any other request
    goes the declared route's way. The OpenAPI document comes from the declared route.

    In the served app the common request does not even reach the route: `shared.http.FastRoutes`
    gives it to `common_answer` straight from the platform layer (`FAST_ROUTES`).
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        declared = super().get_route_handler()
        batch = self.path.endswith("/batch")

        async def handle(request: Request) -> Response:
            answer = await common_answer(request, batch=batch)
            return answer if answer is not None else await declared(request)

        return handle


async def common_answer(request: Request, *, batch: bool) -> Response | None:
    """The answer to the common request, or None for any other.

    The common request is a JSON body that validates and holds nothing a request rule could
    refuse (`may_break_content_rules`). For it, the route's dependencies run in FastAPI's
    order (request rules, readiness, API key and rate limit) and `accept` publishes. Any other
    request (another content type, a body that fails its schema or might break a rule) is left
    to the declared route, untouched, so every refusal is the one FastAPI gives; nothing with
    an effect has run by then.
    """
    events = await _valid_events(request, batch=batch)
    if events is None:
        return None
    refuse_unstorable_parts(request)  # the body was scanned by `_valid_events`
    runtime = await _runtime(request)
    headers = request.headers
    await _authorize_writer(
        request, authorization=headers.get("authorization"), x_api_key=headers.get("x-api-key")
    )
    if batch:
        _within_batch_limit(runtime, events)
    return await _accepted(runtime, events, batch=batch)


async def _single(request: Request) -> Response | None:
    return await common_answer(request, batch=False)


async def _batch(request: Request) -> Response | None:
    return await common_answer(request, batch=True)


async def _valid_events(request: Request, *, batch: bool) -> list[IntakeEvent] | None:
    """The body's events when it is plain JSON that validates and breaks no request rule, else None."""
    if request.headers.get("content-type", "").partition(";")[0].strip().lower() != "application/json":
        return None
    raw = await request.body()
    if not raw or may_break_content_rules(raw):
        return None
    try:
        if batch:
            return EventBatch.model_validate_json(raw).events
        return [IntakeEvent.model_validate_json(raw)]
    except ValidationError:
        return None


async def _accepted(runtime: IntakeRuntime, events: list[IntakeEvent], *, batch: bool) -> Response:
    ids = await accept(runtime, events, batch=batch)
    body = orjson.dumps({"accepted": len(ids), "event_ids": ids})
    return Response(body, status_code=202, media_type="application/json")


def _within_batch_limit(runtime: IntakeRuntime, events: list[IntakeEvent]) -> None:
    limit = runtime.settings.max_batch_events
    if len(events) > limit:
        errors = [FieldError("events", "max_items", f"a batch holds at most {limit} events")]
        count_rejected(errors, events=len(events))
        raise invalid(errors, status=413)


router = APIRouter(prefix="/v1", tags=["events"], route_class=EventRoute)


@router.post("/events", status_code=202, response_model=Accepted, responses={422: {"description": "Problem"}})
async def post_event(event: IntakeEvent, runtime: Runtime, _: Writer) -> Response:
    """Accept one event."""
    return await _accepted(runtime, [event], batch=False)


@router.post(
    "/events/batch", status_code=202, response_model=Accepted, responses={422: {"description": "Problem"}}
)
async def post_batch(batch: EventBatch, runtime: Runtime, _: Writer) -> Response:
    """Accept up to 500 events at once: all of them, or none when any is invalid."""
    _within_batch_limit(runtime, batch.events)
    return await _accepted(runtime, batch.events, batch=True)


def create(settings: Settings | None = None):  # type: ignore[no-untyped-def]
    settings = settings_as(IntakeSettings, settings)
    spec = ServiceSpec(name="intake", metadata=MetaData(), migrations=None, needs_postgres=False)
    plan = load_tracking_plan(settings.config_file("tracking-plan.yaml"))
    runtime = IntakeRuntime(spec, settings, plan)
    app = create_app(
        runtime,
        title="leadflow intake",
        description="Accepts website and form events, validated against the tracking plan.",
        routers=[router, tracking_api.router],
        on_too_large=_count_too_large,
        fast_routes={"/v1/events": _single, "/v1/events/batch": _batch, **tracking_api.FAST_ROUTES},
    )
    app.state.tracking_plan = plan
    app.state.event_limits = runtime.event_limits
    app.state.sealer = runtime.sealer
    app.state.tracking_sealer = EventSealer(runtime.vault, runtime.engine, "drop")
    app.add_exception_handler(RequestValidationError, _malformed)
    tracking_api.install(app, settings)
    return app


def _count_too_large(scope: AsgiScope) -> None:
    """A body refused for its size (by the shared body limit) counts as one refused event."""
    if scope["method"] == "POST" and scope["path"] in EVENT_PATHS:
        count_too_large()


async def _malformed(request: Request, exc: Exception) -> JSONResponse:
    """The shared answer to a request that fails the schema, once its events are counted as refused."""
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(exc)
    if request.url.path in EVENT_PATHS:
        count_rejected(errors, events=events_in(exc.body, batch=request.url.path.endswith("/batch")))
    return problem_response(invalid(errors), request.url.path)
