"""feedback's HTTP API (scope `metrics:read`): return rates, the funnel, rule attribution, alerts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from services.feedback import figures, store
from services.feedback.alerting import RETURN_RATE_PREFIX
from services.feedback.domain import DIMENSIONS, Dimension, FeedbackConfig, Window, parse_window
from shared.auth import Principal, Scope, require
from shared.envelope import utcnow
from shared.problems import FieldError, invalid
from shared.runtime import ServiceRuntime

router = APIRouter(prefix="/v1", tags=["metrics"])
Reader = Annotated[Principal, require(Scope.METRICS_READ)]
PROBLEM = {"description": "Problem (application/problem+json)"}
WindowQuery = Annotated[str | None, Query(examples=["30d"], description="e.g. 7d, 30d, 90d, 12w, 48h")]

# --- answers ------------------------------------------------------------------------------


class Rate(BaseModel):
    """A rate with its Wilson 95% interval; rate and interval are null when nothing was decided."""

    numerator: int
    denominator: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None


class ReasonShare(BaseModel):
    reason: str
    count: int
    share: float = Field(description="Share of the sent-back leads.")


class ReturnRate(Rate):
    window: str
    window_start: datetime
    window_end: datetime
    threshold: float
    min_decisions: int
    above_threshold: bool
    reasons: list[ReasonShare]


class SeriesPoint(Rate):
    at: datetime = Field(description="The end of the window this rate covers.")


class ReturnRateSeries(BaseModel):
    window: str
    step: str
    threshold: float
    items: list[SeriesPoint]


class GroupRate(Rate):
    group: str | None
    above_threshold: bool
    alert: str | None = Field(description="Severity of the group's open alert, if any.")
    reasons: list[ReasonShare]


class ReturnRateGroups(BaseModel):
    window: str
    by: str
    threshold: float
    min_decisions: int
    items: list[GroupRate]


class StageTime(BaseModel):
    count: int
    median: float | None = Field(description="Seconds.")
    p90: float | None = Field(description="Seconds.")


class SlaFigures(BaseModel):
    decided: int
    in_time: int
    compliance: float | None
    breaches: int


class CohortFunnel(BaseModel):
    cohort: str
    start: datetime
    end: datetime
    mql: int
    sal: int
    sql: int
    sqo: int
    returned: int
    disqualified: int
    conversion: dict[str, float | None]
    stage_seconds: dict[str, StageTime]
    sla: SlaFigures


class TeamBreaches(BaseModel):
    team: str | None
    breaches: int
    open: int


class Funnel(BaseModel):
    cohort: str
    items: list[CohortFunnel]
    breaches_by_team: list[TeamBreaches]


class ReasonAttribution(BaseModel):
    reason: str
    with_rate: float | None
    without_rate: float | None
    ratio: float | None


class RuleAttribution(BaseModel):
    rule: str
    with_rule: Rate = Field(alias="with", serialization_alias="with")
    without_rule: Rate = Field(alias="without", serialization_alias="without")
    ratio: float | None = Field(description="Return rate with the rule ÷ without it.")
    reasons: list[ReasonAttribution]


class RuleAttributions(BaseModel):
    window: str
    items: list[RuleAttribution]


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


# --- routes -------------------------------------------------------------------------------


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
        figure = await figures.overall(conn, config, span)
    return {"window": window, "window_start": span.start, "window_end": span.end, **figure}


@router.get("/metrics/return-rate/series", response_model=ReturnRateSeries, responses={422: PROBLEM})
async def get_return_rate_series(
    request: Request,
    _: Reader,
    window: WindowQuery = None,
    step: Annotated[str, Query(examples=["1d"])] = "1d",
    points: Annotated[int, Query(ge=1, le=400)] = 30,
) -> dict[str, Any]:
    """The rolling return rate over time: at each point, the rate over the window ending there."""
    config = _config(request)
    window = window or config.window
    length, step_length = _duration("window", window), _duration("step", step)
    async with _runtime(request).engine.connect() as conn:
        items = await figures.series(conn, end=utcnow(), length=length, step=step_length, points=points)
    return {"window": window, "step": step, "threshold": config.threshold, "items": items}


@router.get("/metrics/return-rate/groups", response_model=ReturnRateGroups, responses={422: PROBLEM})
async def get_return_rate_groups(
    request: Request,
    _: Reader,
    by: Annotated[Dimension, Query(description=f"One of {', '.join(DIMENSIONS)}.")],
    window: WindowQuery = None,
) -> dict[str, Any]:
    """The return rate of each source, channel, campaign, owner, team, policy, score band or grade."""
    config = _config(request)
    window = window or config.window
    span = Window.ending(utcnow(), _duration("window", window))
    async with _runtime(request).engine.connect() as conn:
        open_alerts = await store.open_alerts(conn, RETURN_RATE_PREFIX)
        severities = {key: row.severity for key, row in open_alerts.items()}
        items = await figures.groups(conn, config, span, by, severities)
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
        answer = await figures.funnel(conn, end=utcnow(), kind=cohort, count=cohorts)
    return {"cohort": cohort, **answer}


@router.get("/metrics/rule-attribution", response_model=RuleAttributions, responses={422: PROBLEM})
async def get_rule_attribution(request: Request, _: Reader, window: WindowQuery = None) -> dict[str, Any]:
    """For each scoring rule: the return rate of leads it contributed to, against those it did not."""
    window = window or "90d"
    span = Window.ending(utcnow(), _duration("window", window))
    async with _runtime(request).engine.connect() as conn:
        items = await figures.rule_attribution(conn, span)
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
