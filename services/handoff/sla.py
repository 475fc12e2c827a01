"""SLA policies: which one an MQL falls under, when its decision is due, and when to warn.

A policy that names a calendar counts its hours as business hours in that calendar (see
`business_hours.py`); one without counts wall-clock hours. `_after` and `_elapsed` are the only
places that add or measure time. Datetimes are expected timezone-aware (UTC).
"""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Self

import pydantic
from pydantic import Field, PrivateAttr, model_validator

from services.handoff.business_hours import BusinessCalendar, add_business_time, business_time_between
from shared.config_errors import PydanticWordedConfigError

_STRICT = pydantic.ConfigDict(extra="forbid")


class SlaConfigError(ValueError):
    """The SLA config cannot be used; the message says what is wrong (from a file: where)."""


class SlaFileError(PydanticWordedConfigError, SlaConfigError):
    """The SLA file does not load; each problem names its line."""

    what = "SLA config"


class Selector(pydantic.BaseModel):
    """Matches a lead that had one of `trigger_event_types` in the `within_hours` before its MQL."""

    model_config = _STRICT

    trigger_event_types: list[str] = Field(min_length=1)
    within_hours: float = Field(gt=0)

    def matches(self, recent_events: Sequence[tuple[str, datetime]], mql_at: datetime) -> bool:
        since = mql_at - timedelta(hours=self.within_hours)
        return any(
            event_type in self.trigger_event_types and since <= occurred_at <= mql_at
            for event_type, occurred_at in recent_events
        )


class BreachAction(pydantic.BaseModel):
    """What happens when a deadline passes: alert ops, hand the lead to another owner or queue, or both."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    alert: bool = True
    reassign_to: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _does_something(self) -> Self:
        if not self.alert and self.reassign_to is None:
            raise ValueError("on_breach must alert, reassign_to an owner or queue, or both")
        return self


class SlaPolicy(pydantic.BaseModel):
    model_config = _STRICT

    name: str = Field(min_length=1)
    # Business hours when `calendar` is set, wall-clock hours otherwise.
    decide_within_hours: float = Field(gt=0)
    qualify_within_hours: float = Field(gt=0)
    # Fraction of the time allowed after which a warning fires.
    warn_at: float = Field(default=0.75, gt=0, lt=1)
    # None marks the fallback policy, used when no selector matches.
    applies_when: Selector | None = None
    # The policy of exploration handoffs (near misses handed off to learn from), and only theirs.
    for_exploration: bool = False
    # Name of one of the config's calendars.
    calendar: str | None = Field(default=None, min_length=1)
    on_breach: BreachAction = Field(default_factory=BreachAction)

    # Set by the SlaConfig that defines the named calendar.
    _business_calendar: BusinessCalendar | None = PrivateAttr(default=None)

    @property
    def business_calendar(self) -> BusinessCalendar | None:
        """The calendar this policy counts in; None for wall-clock hours."""
        if self.calendar is not None and self._business_calendar is None:
            raise SlaConfigError(
                f"policy {self.name!r} names calendar {self.calendar!r} but was not loaded "
                "through an SlaConfig that defines it"
            )
        return self._business_calendar


class SlaConfig(pydantic.BaseModel):
    model_config = _STRICT

    policies: list[SlaPolicy] = Field(min_length=1)
    default_owner: str = Field(default="inbound-queue", min_length=1)
    calendars: list[BusinessCalendar] = []

    @model_validator(mode="after")
    def _one_fallback_and_unique_names(self) -> Self:
        fallbacks = [p.name for p in self.policies if p.applies_when is None and not p.for_exploration]
        if len(fallbacks) != 1:
            raise ValueError(
                "exactly one policy must have no applies_when (the fallback); "
                f"found {len(fallbacks)}: {', '.join(fallbacks) or 'none'}"
            )
        names = [p.name for p in self.policies]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"policy names must be unique; repeated: {', '.join(duplicates)}")
        return self

    @model_validator(mode="after")
    def _calendars_exist(self) -> Self:
        names = [c.name for c in self.calendars]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"calendar names must be unique; repeated: {', '.join(duplicates)}")
        by_name = {c.name: c for c in self.calendars}
        for policy in self.policies:
            if policy.calendar is None:
                continue
            if policy.calendar not in by_name:
                known = ", ".join(sorted(by_name)) or "none defined"
                raise ValueError(
                    f"policy {policy.name!r} names calendar {policy.calendar!r}, "
                    f"which is not in calendars ({known})"
                )
            # Resolved once here so decide_by(policy, start) needs nothing but the policy.
            policy._business_calendar = by_name[policy.calendar]
        return self

    @property
    def fallback(self) -> SlaPolicy:
        return next(p for p in self.policies if p.applies_when is None and not p.for_exploration)

    @property
    def exploration(self) -> SlaPolicy:
        """The policy of exploration handoffs: the one marked `for_exploration`, else the fallback."""
        return next((p for p in self.policies if p.for_exploration), self.fallback)

    def calendar_named(self, name: str) -> BusinessCalendar:
        """A calendar by name, e.g. the one of the team a handoff is routed to."""
        for calendar in self.calendars:
            if calendar.name == name:
                return calendar
        known = ", ".join(c.name for c in self.calendars) or "none defined"
        raise SlaConfigError(f"no calendar named {name!r}; known: {known}")


def choose_policy(
    config: SlaConfig, *, recent_events: Sequence[tuple[str, datetime]], mql_at: datetime
) -> SlaPolicy:
    """The first policy, in file order, whose selector matches the lead; else the fallback.
    The exploration policy is never chosen this way."""
    for policy in config.policies:
        if policy.for_exploration:
            continue
        if policy.applies_when and policy.applies_when.matches(recent_events, mql_at):
            return policy
    return config.fallback


def decide_by(policy: SlaPolicy, start: datetime, *, calendar: BusinessCalendar | None = None) -> datetime:
    """When sales must accept or reject a handoff created at `start`.

    `calendar`, when given (e.g. the assigned team's), replaces the policy's own.
    """
    return _deadline(_counting_in(policy, calendar), start, policy.decide_within_hours)


def qualify_by(policy: SlaPolicy, start: datetime, *, calendar: BusinessCalendar | None = None) -> datetime:
    """When sales must qualify or return a lead accepted at `start`; `calendar` as in `decide_by`."""
    return _deadline(_counting_in(policy, calendar), start, policy.qualify_within_hours)


def warning_at(
    policy: SlaPolicy, start: datetime, due: datetime, *, calendar: BusinessCalendar | None = None
) -> datetime:
    """The moment `policy.warn_at` of the time allowed between `start` and `due` is used.

    On a calendar the fraction is of business time: a deadline that spans a weekend warns
    when 75% of the working hours are gone, not 75% of the weekend.
    """
    if due < start:
        raise ValueError(f"due ({due.isoformat()}) is before start ({start.isoformat()})")
    counting_in = _counting_in(policy, calendar)
    allowed = _elapsed(counting_in, start, due)
    return _after(counting_in, start, allowed * policy.warn_at)


def warn_at(policy: SlaPolicy, start: datetime, due: datetime) -> datetime:
    """The older name of `warning_at`, kept for callers that use it."""
    return warning_at(policy, start, due)


def _counting_in(policy: SlaPolicy, override: BusinessCalendar | None) -> BusinessCalendar | None:
    return override if override is not None else policy.business_calendar


def _deadline(calendar: BusinessCalendar | None, start: datetime, hours: float) -> datetime:
    return _after(calendar, start, timedelta(hours=hours))


def _after(calendar: BusinessCalendar | None, start: datetime, duration: timedelta) -> datetime:
    return start + duration if calendar is None else add_business_time(calendar, start, duration)


def _elapsed(calendar: BusinessCalendar | None, start: datetime, end: datetime) -> timedelta:
    return end - start if calendar is None else business_time_between(calendar, start, end)
