"""The shapes of feedback's HTTP answers (scope `metrics:read`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


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


class GroupFunnel(BaseModel):
    group: str | None = Field(description="The value of the grouping; null: not known for these leads.")
    mql: int
    sal: int
    sql: int
    sqo: int
    returned: int
    disqualified: int
    conversion: dict[str, float | None]
    stage_seconds: dict[str, StageTime]
    sla: SlaFigures


class FunnelGroups(BaseModel):
    cohort: str
    cohorts: int
    by: str
    start: datetime
    end: datetime
    items: list[GroupFunnel]


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
