"""intake: HTTP in, `lead.events` out. Validates against the tracking plan; holds no lead state."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import MetaData

from services.intake import tracking_api
from services.intake.config_files import load_tracking_plan
from services.intake.domain import EventBatch, IntakeEvent, TrackingPlan
from services.intake.event_limits import EventLimits
from services.intake.handlers import accept_events
from services.intake.metrics import EVENT_PATHS, CountOversized, count_rejected, events_in
from services.intake.settings import IntakeSettings
from shared.auth import Principal, Scope, require
from shared.http import create_app
from shared.problems import FieldError, Problem, invalid, problem_response, validation_errors
from shared.runtime import ServiceRuntime, ServiceSpec
from shared.settings import Settings, settings_as

router = APIRouter(prefix="/v1", tags=["events"])
Writer = Annotated[Principal, require(Scope.EVENTS_WRITE)]


class Accepted(BaseModel):
    accepted: int
    event_ids: list[str]


class IntakeRuntime(ServiceRuntime):
    """The runtime of intake, whose settings are intake's own (`max_batch_events`)."""

    settings: IntakeSettings

    def __init__(self, spec: ServiceSpec, settings: IntakeSettings) -> None:
        super().__init__(spec, settings)


def _runtime(request: Request) -> IntakeRuntime:
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


async def _accept(
    request: Request, runtime: ServiceRuntime, events: list[IntakeEvent], *, batch: bool
) -> JSONResponse:
    plan: TrackingPlan = request.app.state.tracking_plan
    limits: EventLimits = request.app.state.event_limits
    ids = await accept_events(
        events,
        plan=plan,
        limits=limits,
        producer=runtime.producer,
        topic=runtime.topics.events,
        source="intake",
        batch=batch,
        deadline_s=runtime.settings.produce_timeout_s,
    )
    return JSONResponse(Accepted(accepted=len(ids), event_ids=ids).model_dump(), status_code=202)


@router.post("/events", status_code=202, response_model=Accepted, responses={422: {"description": "Problem"}})
async def post_event(event: IntakeEvent, request: Request, runtime: Runtime, _: Writer) -> JSONResponse:
    """Accept one event."""
    return await _accept(request, runtime, [event], batch=False)


@router.post(
    "/events/batch", status_code=202, response_model=Accepted, responses={422: {"description": "Problem"}}
)
async def post_batch(batch: EventBatch, request: Request, runtime: Runtime, _: Writer) -> JSONResponse:
    """Accept up to 500 events at once: all of them, or none when any is invalid."""
    limit = runtime.settings.max_batch_events
    if len(batch.events) > limit:
        errors = [FieldError("events", "max_items", f"a batch holds at most {limit} events")]
        count_rejected(errors, events=len(batch.events))
        raise invalid(errors, status=413)
    return await _accept(request, runtime, batch.events, batch=True)


def create(settings: Settings | None = None):  # type: ignore[no-untyped-def]
    settings = settings_as(IntakeSettings, settings)
    spec = ServiceSpec(name="intake", metadata=MetaData(), migrations=None, needs_postgres=False)
    runtime = IntakeRuntime(spec, settings)
    app = create_app(
        runtime,
        title="leadflow intake",
        description="Accepts website and form events, validated against the tracking plan.",
        routers=[router, tracking_api.router],
    )
    app.state.tracking_plan = load_tracking_plan(settings.config_file("tracking-plan.yaml"))
    app.state.event_limits = settings.event_limits
    app.add_exception_handler(RequestValidationError, _malformed)
    app.add_middleware(CountOversized, max_bytes=settings.max_body_bytes)
    tracking_api.install(app, settings)
    return app


async def _malformed(request: Request, exc: Exception) -> JSONResponse:
    """The shared answer to a request that fails the schema, once its events are counted as refused."""
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(exc)
    if request.url.path in EVENT_PATHS:
        count_rejected(errors, events=events_in(exc.body, batch=request.url.path.endswith("/batch")))
    return problem_response(invalid(errors), request.url.path)
