"""feedback: return rate against the threshold, alerts for ops."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request
from pydantic import BaseModel

from services.feedback import store
from services.feedback.domain import FeedbackConfig, load_feedback_config, parse_window
from services.feedback.handlers import make_alert_timer, make_handlers, return_rate
from shared.auth import Principal, Scope, require
from shared.envelope import utcnow
from shared.events import LEAD_LIFECYCLE
from shared.http import create_app
from shared.problems import FieldError, invalid
from shared.runtime import ServiceRuntime, ServiceSpec
from shared.settings import Settings, get_settings

router = APIRouter(prefix="/v1", tags=["metrics"])
Reader = Annotated[Principal, require(Scope.METRICS_READ)]


class ReturnRate(BaseModel):
    window: str
    window_start: datetime
    window_end: datetime
    numerator: int
    denominator: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    threshold: float
    min_decisions: int
    above_threshold: bool


class AlertPublic(BaseModel):
    alert_id: str
    alert_key: str
    status: str
    severity: str | None
    raised_at: datetime
    resolved_at: datetime | None
    figures: dict[str, Any]


class AlertList(BaseModel):
    items: list[AlertPublic]


@router.get("/metrics/return-rate", response_model=ReturnRate, responses={422: {"description": "Problem"}})
async def get_return_rate(
    request: Request, _: Reader, window: Annotated[str | None, Query(examples=["30d"])] = None
) -> ReturnRate:
    """Leads sent back ÷ handoffs decided in the window, with the Wilson 95% interval."""
    config: FeedbackConfig = request.app.state.feedback
    window = window or config.window
    try:
        length = parse_window(window)
    except ValueError as exc:
        raise invalid([FieldError("window", "duration", str(exc))]) from None
    runtime: ServiceRuntime = request.app.state.runtime
    now = utcnow()
    async with runtime.engine.connect() as conn:
        figure = await return_rate(conn, now=now, window=length)
    return ReturnRate(
        window=window,
        window_start=now - length,
        window_end=now,
        numerator=figure.numerator,
        denominator=figure.denominator,
        rate=figure.rate,
        ci_low=figure.ci_low,
        ci_high=figure.ci_high,
        threshold=config.threshold,
        min_decisions=config.min_decisions,
        above_threshold=figure.rate is not None and figure.rate > config.threshold,
    )


@router.get("/alerts", response_model=AlertList)
async def list_alerts(
    request: Request,
    _: Reader,
    status: Annotated[Literal["open", "resolved"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AlertList:
    """Alerts, newest first."""
    runtime: ServiceRuntime = request.app.state.runtime
    async with runtime.engine.connect() as conn:
        rows = await store.list_alerts(conn, status=status, limit=limit)
    return AlertList(items=[AlertPublic.model_validate(dict(r._mapping)) for r in rows])


def create(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    config = load_feedback_config(settings.config_file("feedback.yaml"))
    handlers, batch_handlers = make_handlers(config)
    spec = ServiceSpec(
        name="feedback",
        metadata=store.metadata,
        migrations=store.MIGRATIONS,
        subscriptions=[LEAD_LIFECYCLE],
        handlers=handlers,
        batch_handlers=batch_handlers,
        loops=[make_alert_timer(config)],
    )
    app = create_app(
        ServiceRuntime(spec, settings),
        title="leadflow feedback",
        description="Return rate against the threshold, funnel and alerts.",
        routers=[router],
    )
    app.state.feedback = config
    return app
