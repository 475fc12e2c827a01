"""The arithmetic of feedback: windows, score bands, cohorts, stage times, funnels, alert decisions.

Pure calculations, no I/O (`config_files.load_feedback_config` reads the file). PRODUCT.md
"Feedback metrics" holds the definitions these functions implement.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Literal, Protocol

import pydantic
from pydantic import Field, field_validator, model_validator

from shared.config_errors import PydanticWordedConfigError
from shared.rates import RateFigure, parse_window, rate_figure, wilson_interval

__all__ = [
    "DIMENSIONS",
    "AlertDecision",
    "AlertSeverity",
    "CohortFunnel",
    "FeedbackConfig",
    "FeedbackConfigError",
    "FunnelFacts",
    "RateFigure",
    "StageTime",
    "Window",
    "cohort_funnels",
    "cohort_of",
    "decide_alert",
    "group_alert_key",
    "parse_window",
    "percentile",
    "rate_figure",
    "ratio",
    "score_band",
    "series_points",
    "wilson_interval",
]

# The groupings of a return rate (PRODUCT.md, issue 5). `score_band` is derived from the score;
# `account_tier` and `account_matched` (matched | unmatched) from the account on handoff.created.
Dimension = Literal[
    "source",
    "channel",
    "campaign",
    "owner",
    "team",
    "policy",
    "score_band",
    "grade",
    "account_tier",
    "account_matched",
]
DIMENSIONS: tuple[Dimension, ...] = typing.get_args(Dimension)


# --- windows ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """The decisions a rate counts: those made at or after `start` and at or before `end`."""

    start: datetime
    end: datetime

    @classmethod
    def ending(cls, end: datetime, length: timedelta) -> Window:
        return cls(end - length, end)

    def __contains__(self, moment: datetime) -> bool:
        return self.start <= moment <= self.end


MAX_SERIES_REACH = timedelta(days=36500)  # a hundred years: far past any data, and no overflow


def series_reach(*, length: timedelta, step: timedelta, points: int) -> timedelta:
    """How far back a series goes: its oldest point's window starts this long before the end."""
    return length + step * (points - 1)


def series_points(end: datetime, *, step: timedelta, points: int) -> list[datetime]:
    """The ends of `points` windows, `step` apart, the last one at `end`; oldest first."""
    if points < 1:
        raise ValueError(f"points must be at least 1, got {points}")
    return [end - step * (points - 1 - i) for i in range(points)]


# --- score bands --------------------------------------------------------------------------


def score_band(score: int | None, edges: Sequence[int]) -> str | None:
    """The band a score falls in: edges [60, 80] give "<60", "60-79" and "80+"."""
    if score is None:
        return None
    lower: int | None = None
    for edge in edges:
        if score < edge:
            return f"<{edge}" if lower is None else f"{lower}-{edge - 1}"
        lower = edge
    return f"{lower}+"


# --- ratios and percentiles ---------------------------------------------------------------


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """How many times larger one rate is than another; None when either is unknown or the base is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) by linear interpolation between closest ranks, as Postgres'
    percentile_cont computes it; None for no values. percentile(v, 0.5) is the median."""
    if not 0 <= q <= 1:
        raise ValueError(f"q must be between 0 and 1, got {q}")
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    below, above = math.floor(position), math.ceil(position)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


# --- cohorts and the funnel ---------------------------------------------------------------

CohortKind = Literal["week", "month"]


def cohort_of(moment: datetime, kind: CohortKind) -> tuple[str, datetime, datetime]:
    """The cohort (ISO week or calendar month, in UTC) a moment belongs to: label, start, end."""
    day = moment.astimezone(UTC).date()
    if kind == "week":
        start_day = day - timedelta(days=day.weekday())
        year, week, _ = start_day.isocalendar()
        start = datetime(start_day.year, start_day.month, start_day.day, tzinfo=UTC)
        return f"{year}-W{week:02d}", start, start + timedelta(days=7)
    start = datetime(day.year, day.month, 1, tzinfo=UTC)
    end = datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=UTC)
    return f"{day.year}-{day.month:02d}", start, end


def previous_cohorts(end: datetime, kind: CohortKind, count: int) -> list[tuple[str, datetime, datetime]]:
    """The `count` cohorts up to and including the one of `end`, oldest first."""
    cohorts = [cohort_of(end, kind)]
    while len(cohorts) < count:
        cohorts.append(cohort_of(cohorts[-1][1] - timedelta(seconds=1), kind))
    return cohorts[::-1]


@dataclass(frozen=True)
class FunnelFacts:
    """What the funnel needs of one handoff."""

    entered_at: datetime  # when the lead reached MQL (else when it was handed off)
    handed_off_at: datetime | None
    decision: str | None  # accepted | rejected
    decided_at: datetime | None
    decided_in_time: bool | None
    sent_back_at: datetime | None
    sql_at: datetime | None
    sqo_at: datetime | None
    disqualified_at: datetime | None
    breaches: int = 0


@dataclass(frozen=True)
class StageTime:
    count: int
    median: float | None
    p90: float | None

    @classmethod
    def of(cls, seconds: Sequence[float]) -> StageTime:
        return cls(len(seconds), percentile(seconds, 0.5), percentile(seconds, 0.9))


@dataclass(frozen=True)
class CohortFunnel:
    cohort: str
    start: datetime
    end: datetime
    mql: int = 0
    sal: int = 0
    sql: int = 0
    sqo: int = 0
    returned: int = 0
    disqualified: int = 0
    stage_seconds: dict[str, StageTime] = field(default_factory=dict)
    decided: int = 0
    in_time: int = 0
    breaches: int = 0

    @property
    def conversion(self) -> dict[str, float | None]:
        return {
            "mql_to_sal": ratio(self.sal, self.mql),
            "sal_to_sql": ratio(self.sql, self.sal),
            "sql_to_sqo": ratio(self.sqo, self.sql),
        }

    @property
    def compliance(self) -> float | None:
        """SLA compliance: the share of decisions made before their deadline."""
        return ratio(self.in_time, self.decided)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


class StageExits(Protocol):
    """The moments a handoff's facts record (a fact row or `FunnelFacts`)."""

    @property
    def decision(self) -> str | None: ...
    @property
    def decided_at(self) -> datetime | None: ...
    @property
    def sql_at(self) -> datetime | None: ...
    @property
    def sqo_at(self) -> datetime | None: ...
    @property
    def sent_back_at(self) -> datetime | None: ...
    @property
    def disqualified_at(self) -> datetime | None: ...


def left_stage_at(facts: StageExits, stage: str) -> datetime | None:
    """When the handoff left `stage`, as far as its facts tell; None while it is still there.

    mql is left when accepted, rejected or disqualified; sal (once accepted) when qualified,
    returned or disqualified; sql when an opportunity opens, or on a return or a
    disqualification. The funnel's time in stage and the end of an SLA breach both ask this.
    """
    exits = {
        "mql": (facts.decided_at, facts.disqualified_at),
        "sal": (facts.sql_at, facts.sent_back_at, facts.disqualified_at)
        if facts.decision == "accepted"
        else (),
        "sql": (facts.sqo_at, facts.sent_back_at, facts.disqualified_at) if facts.sql_at else (),
    }.get(stage, ())
    present = [moment for moment in exits if moment is not None]
    return min(present) if present else None


def stage_durations(facts: FunnelFacts) -> dict[str, float | None]:
    """Seconds spent in each stage the handoff has left; None for a stage not (yet) left."""
    accepted_at = facts.decided_at if facts.decision == "accepted" else None
    return {
        "mql": _seconds(facts.handed_off_at or facts.entered_at, left_stage_at(facts, "mql")),
        "sal": _seconds(accepted_at, left_stage_at(facts, "sal")),
        "sql": _seconds(facts.sql_at, left_stage_at(facts, "sql")),
    }


def cohort_funnels(
    facts: Iterable[FunnelFacts], cohorts: Sequence[tuple[str, datetime, datetime]]
) -> list[CohortFunnel]:
    """The funnel of each cohort, by the moment its leads reached MQL; facts outside are ignored."""
    by_label: dict[str, list[FunnelFacts]] = {label: [] for label, _, _ in cohorts}
    for fact in facts:
        for label, start, end in cohorts:
            if start <= fact.entered_at < end:
                by_label[label].append(fact)
                break
    return [_funnel(label, start, end, by_label[label]) for label, start, end in cohorts]


def _funnel(label: str, start: datetime, end: datetime, facts: list[FunnelFacts]) -> CohortFunnel:
    durations: dict[str, list[float]] = {"mql": [], "sal": [], "sql": []}
    for fact in facts:
        for stage, seconds in stage_durations(fact).items():
            if seconds is not None:
                durations[stage].append(seconds)
    decided = [f for f in facts if f.decision is not None]
    return CohortFunnel(
        cohort=label,
        start=start,
        end=end,
        mql=len(facts),
        sal=sum(1 for f in facts if f.decision == "accepted"),
        sql=sum(1 for f in facts if f.sql_at is not None),
        sqo=sum(1 for f in facts if f.sqo_at is not None),
        returned=sum(1 for f in facts if f.sent_back_at is not None),
        disqualified=sum(1 for f in facts if f.disqualified_at is not None),
        stage_seconds={stage: StageTime.of(values) for stage, values in durations.items()},
        decided=len(decided),
        in_time=sum(1 for f in decided if f.decided_in_time),
        breaches=sum(f.breaches for f in facts),
    )


# --- alerts -------------------------------------------------------------------------------


class AlertSeverity(StrEnum):
    WATCH = "watch"
    CONFIRMED = "confirmed"


@dataclass(frozen=True)
class AlertDecision:
    action: Literal["raise", "escalate", "resolve", "keep"]
    # Set when raising or escalating.
    severity: AlertSeverity | None = None


def decide_alert(
    figure: RateFigure,
    *,
    threshold: float,
    min_decisions: int,
    currently_open: bool,
    open_severity: str | None = None,
) -> AlertDecision:
    """Raise or resolve an alert on a rate crossing `threshold`; otherwise keep its state.

    Raising and resolving each happen once per crossing: an open alert above the threshold,
    or a closed one below it, is kept as it is. Too few decisions never raise an alert.
    An open `watch` alert is escalated, once, to `confirmed` when the interval's lower bound
    clears the threshold; a confirmed alert stays confirmed until it resolves.
    """
    if currently_open:
        if figure.rate is None or figure.rate <= threshold:
            return AlertDecision("resolve")
        if open_severity == AlertSeverity.WATCH and figure.ci_low is not None and figure.ci_low > threshold:
            return AlertDecision("escalate", AlertSeverity.CONFIRMED)
        return AlertDecision("keep")
    if figure.rate is None or figure.rate <= threshold or figure.denominator < min_decisions:
        return AlertDecision("keep")
    assert figure.ci_low is not None  # a figure with a rate always has an interval
    # Confirmed when even the interval's lower bound clears the threshold.
    confirmed = figure.ci_low > threshold
    return AlertDecision("raise", AlertSeverity.CONFIRMED if confirmed else AlertSeverity.WATCH)


def group_alert_key(group: str) -> str:
    """`return_rate:overall`, or `return_rate:<dimension>:<value>` for a group."""
    return f"return_rate:{group}"


# --- configuration ------------------------------------------------------------------------


# The values of the shipped config (config/feedback.yaml): its teams, policies, grades, the
# channels the scoring model knows, and common sources. No owners, no campaigns.
DEFAULT_METRIC_VALUES: dict[Dimension, tuple[str, ...]] = {
    "source": ("webinar", "referral", "website", "event", "partner"),
    "channel": ("referral", "partner", "event", "organic", "paid", "purchased_list"),
    "team": ("emea-sales", "amer-sales", "enterprise"),
    "policy": ("hot", "standard"),
    "grade": ("A", "B", "C", "D"),
    "account_matched": ("matched", "unmatched"),
}


class FeedbackConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    threshold: float = Field(default=0.10, gt=0, lt=1)
    min_decisions: int = Field(default=20, ge=1)
    window: str = "30d"
    alert_dimensions: list[Dimension] = Field(default_factory=lambda: [*DIMENSIONS])
    score_bands: list[int] = Field(default_factory=lambda: [60, 80, 100])
    # Values with a Prometheus series of their own; the rest of a dimension is summed under
    # `<dimension>:other` (score bands come from `score_bands`, so each has its own).
    metric_values: dict[Dimension, list[str]] = Field(
        default_factory=lambda: {d: list(v) for d, v in DEFAULT_METRIC_VALUES.items()}
    )

    @field_validator("window")
    @classmethod
    def _window_parses(cls, value: str) -> str:
        parse_window(value)
        return value

    @model_validator(mode="after")
    def _bands_ascend(self) -> FeedbackConfig:
        if any(b <= a for a, b in zip(self.score_bands, self.score_bands[1:], strict=False)):
            raise ValueError(f"score_bands must ascend strictly, got {self.score_bands}")
        return self

    @property
    def window_length(self) -> timedelta:
        return parse_window(self.window)


def metric_groups(
    figures: Mapping[str, RateFigure], known: Mapping[Dimension, list[str]]
) -> dict[str, RateFigure]:
    """The figures as Prometheus gets them: a group whose value the config does not list (a
    campaign or a source named in an event) is summed into `<dimension>:other`, so no value
    from an event becomes a label and the series stay bounded."""
    kept: dict[str, RateFigure] = {}
    other: dict[str, tuple[int, int]] = {}
    for group, figure in figures.items():
        dimension, _, value = group.partition(":")
        listed = known.get(dimension, ()) if dimension in DIMENSIONS else ()
        if not value or dimension == "score_band" or value in listed:
            kept[group] = figure
            continue
        sent_back, decided = other.get(dimension, (0, 0))
        other[dimension] = (sent_back + figure.numerator, decided + figure.denominator)
    for dimension, (sent_back, decided) in other.items():
        kept[f"{dimension}:other"] = rate_figure(sent_back, decided)
    return kept


class FeedbackConfigError(PydanticWordedConfigError):
    """The feedback file cannot be used; each problem names its line and what is wrong."""

    what = "feedback config"
