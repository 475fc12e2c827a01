"""feedback: return rates against the threshold, the funnel, rule attribution, alerts for ops,
and the dashboard. The JSON routes (scope `metrics:read`) are here; the page is in `dashboard`."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request

from services.feedback import alert_webhooks, dashboard, failed_events, reports, retention, store
from services.feedback.alerting import RETURN_RATE_PREFIX, make_alert_timer
from services.feedback.config_files import load_feedback_config
from services.feedback.domain import (
    DIMENSIONS,
    MAX_SERIES_REACH,
    Dimension,
    FeedbackConfig,
    Window,
    parse_window,
    series_reach,
)
from services.feedback.handlers import make_handlers
from services.feedback.schemas import (
    AlertList,
    AlertPublic,
    Funnel,
    FunnelGroups,
    ReturnRate,
    ReturnRateGroups,
    ReturnRateSeries,
    RuleAttributions,
)
from services.feedback.settings import FeedbackSettings
from shared.auth import Principal, Scope, require
from shared.envelope import utcnow
from shared.events import FAILED_EVENTS, LEAD_LIFECYCLE, OPS_ALERTS
from shared.http import create_app
from shared.problems import FieldError, invalid
from shared.runtime import ServiceRuntime, ServiceSpec
from shared.settings import Settings, settings_as

# The topics its consumer reads (base names); `leadflow dev` drains this group on them at Ctrl-C.
SUBSCRIPTIONS = [LEAD_LIFECYCLE, OPS_ALERTS, FAILED_EVENTS]
router = APIRouter(prefix="/v1", tags=["metrics"])
Reader = Annotated[Principal, require(Scope.METRICS_READ)]
PROBLEM = {"description": "Problem (application/problem+json)"}
WindowQuery = Annotated[
    str | None, Query(max_length=12, examples=["30d"], description="e.g. 7d, 30d, 90d, 12w, 48h")
]


def _config(request: Request) -> FeedbackConfig:
    config: FeedbackConfig = request.app.state.feedback
    return config


def _runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


def _duration(name: str, value: str) -> timedelta:
    try:
        return parse_window(value)
    except ValueError as exc:
        raise invalid([FieldError(name, "duration", str(exc))]) from None


@router.get("/metrics/return-rate", response_model=ReturnRate, responses={422: PROBLEM})
async def get_return_rate(request: Request, _: Reader, window: WindowQuery = None) -> dict[str, Any]:
    """Leads sent back ÷ handoffs decided in the window, with the interval and the reasons."""
    config = _config(request)
    window = window or config.window
    span = Window.ending(utcnow(), _duration("window", window))
    async with _runtime(request).engine.connect() as conn:
        figure = await reports.overall(conn, config, span)
    return {"window": window, "window_start": span.start, "window_end": span.end, **figure}


@router.get("/metrics/return-rate/series", response_model=ReturnRateSeries, responses={422: PROBLEM})
async def get_return_rate_series(
    request: Request,
    _: Reader,
    window: WindowQuery = None,
    step: Annotated[str, Query(max_length=12, examples=["1d"])] = "1d",
    points: Annotated[int, Query(ge=1, le=400)] = 30,
) -> dict[str, Any]:
    """The rolling return rate over time: at each point, the rate over the window ending there."""
    config = _config(request)
    window = window or config.window
    length, step_length = _duration("window", window), _duration("step", step)
    if series_reach(length=length, step=step_length, points=points) > MAX_SERIES_REACH:
        reach = f"window + step × (points - 1) must not exceed {MAX_SERIES_REACH.days} days"
        raise invalid([FieldError("points", "series_reach", reach)])
    async with _runtime(request).engine.connect() as conn:
        items = await reports.series(conn, end=utcnow(), length=length, step=step_length, points=points)
    return {"window": window, "step": step, "threshold": config.threshold, "items": items}


@router.get("/metrics/return-rate/groups", response_model=ReturnRateGroups, responses={422: PROBLEM})
async def get_return_rate_groups(
    request: Request,
    _: Reader,
    by: Annotated[Dimension, Query(description=f"One of {', '.join(DIMENSIONS)}.")],
    window: WindowQuery = None,
) -> dict[str, Any]:
    """The return rate of each source, channel, campaign, owner, team, policy, score band, grade,
    account tier or account match (matched | unmatched)."""
    config = _config(request)
    window = window or config.window
    span = Window.ending(utcnow(), _duration("window", window))
    async with _runtime(request).engine.connect() as conn:
        open_alerts = await store.open_alerts(conn, RETURN_RATE_PREFIX)
        severities = {key: row.severity for key, row in open_alerts.items()}
        items = await reports.groups(conn, config, span, by, severities)
    return {
        "window": window,
        "by": by,
        "threshold": config.threshold,
        "min_decisions": config.min_decisions,
        "items": items,
    }


@router.get("/metrics/funnel", response_model=Funnel, responses={422: PROBLEM})
async def get_funnel(
    request: Request,
    _: Reader,
    cohort: Annotated[Literal["week", "month"], Query()] = "week",
    cohorts: Annotated[int, Query(ge=1, le=104)] = 8,
) -> dict[str, Any]:
    """MQL → SAL → SQL → SQO per cohort (by when leads reached MQL), time in stage, SLA compliance."""
    async with _runtime(request).engine.connect() as conn:
        answer = await reports.funnel(conn, end=utcnow(), kind=cohort, count=cohorts)
    return {"cohort": cohort, **answer}


@router.get("/metrics/funnel/groups", response_model=FunnelGroups, responses={422: PROBLEM})
async def get_funnel_groups(
    request: Request,
    _: Reader,
    by: Annotated[Dimension, Query(description=f"One of {', '.join(DIMENSIONS)}.")],
    cohort: Annotated[Literal["week", "month"], Query()] = "week",
    cohorts: Annotated[int, Query(ge=1, le=104)] = 8,
) -> dict[str, Any]:
    """MQL → SAL → SQL → SQO of each account tier, account match, source, ... over the last cohorts."""
    async with _runtime(request).engine.connect() as conn:
        answer = await reports.funnel_groups(
            conn, _config(request), end=utcnow(), kind=cohort, count=cohorts, by=by
        )
    return {"cohort": cohort, "cohorts": cohorts, "by": by, **answer}


@router.get("/metrics/rule-attribution", response_model=RuleAttributions, responses={422: PROBLEM})
async def get_rule_attribution(request: Request, _: Reader, window: WindowQuery = None) -> dict[str, Any]:
    """For each scoring rule: the return rate of leads it contributed to, against those it did not."""
    window = window or "90d"
    span = Window.ending(utcnow(), _duration("window", window))
    async with _runtime(request).engine.connect() as conn:
        items = await reports.rule_attribution(conn, span)
    return {"window": window, "items": items}


@router.get("/alerts", response_model=AlertList, responses={422: PROBLEM})
async def list_alerts(
    request: Request,
    _: Reader,
    status: Annotated[Literal["open", "resolved"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AlertList:
    """Alerts, newest first: return rates over the threshold and SLA breaches."""
    async with _runtime(request).engine.connect() as conn:
        rows = await store.list_alerts(conn, status=status, limit=limit)
    return AlertList(items=[AlertPublic.model_validate(dict(r._mapping)) for r in rows])


def create(settings: Settings | None = None) -> FastAPI:
    settings = settings_as(FeedbackSettings, settings)
    config = load_feedback_config(settings.config_file("feedback.yaml"))
    spec = ServiceSpec(
        name="feedback",
        metadata=store.metadata,
        migrations=store.MIGRATIONS,
        subscriptions=SUBSCRIPTIONS,
        handlers={},
        batch_handlers={
            **make_handlers(config),
            **alert_webhooks.batch_handlers(),
            **failed_events.batch_handlers(),
        },
        loops=[
            make_alert_timer(config, interval_s=settings.alert_eval_interval_s),
            alert_webhooks.make_delivery_loop(
                first_retry_s=settings.webhook_first_retry_s,
                max_age=timedelta(hours=settings.webhook_max_age_h),
                poll_s=settings.webhook_poll_s,
            ),
        ],
        retention=retention.TARGETS,
    )
    app = create_app(
        ServiceRuntime(spec, settings),
        title="leadflow feedback",
        description="Return rates against the threshold, the funnel, rule attribution, alerts, dashboard.",
        routers=[router, dashboard.router, alert_webhooks.router, failed_events.router],
    )
    app.state.feedback = config
    return app
