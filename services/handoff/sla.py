"""SLA policies: which one an MQL falls under, and when its decision is due.

Deadlines are wall-clock hours for now. Business-hours calendars (timezone, working hours,
holidays) will come later and change only `_deadline`, the one place that adds time.
Datetimes are expected timezone-aware (UTC).
"""

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Self

import pydantic
import yaml
from pydantic import Field, model_validator

_STRICT = pydantic.ConfigDict(extra="forbid")


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


class SlaPolicy(pydantic.BaseModel):
    model_config = _STRICT

    name: str = Field(min_length=1)
    decide_within_hours: float = Field(gt=0)
    qualify_within_hours: float = Field(gt=0)
    # Fraction of the time allowed after which a warning fires.
    warn_at: float = Field(default=0.75, gt=0, lt=1)
    # None marks the fallback policy, used when no selector matches.
    applies_when: Selector | None = None


class SlaConfig(pydantic.BaseModel):
    model_config = _STRICT

    policies: list[SlaPolicy] = Field(min_length=1)
    default_owner: str = Field(default="inbound-queue", min_length=1)

    @model_validator(mode="after")
    def _one_fallback_and_unique_names(self) -> Self:
        fallbacks = [p.name for p in self.policies if p.applies_when is None]
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

    @property
    def fallback(self) -> SlaPolicy:
        return next(p for p in self.policies if p.applies_when is None)


class SlaConfigError(ValueError):
    """The SLA file cannot be used; the message names the file and what is wrong."""


def load_sla_config(path: str | Path) -> SlaConfig:
    """Read and validate the SLA file, refusing it whole if anything is wrong."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SlaConfigError(f"{path}: cannot read SLA config: {exc}") from exc
    try:
        return SlaConfig.model_validate(raw or {})
    except pydantic.ValidationError as exc:
        raise SlaConfigError(f"{path}: invalid SLA config: {_describe(exc)}") from exc


def choose_policy(
    config: SlaConfig, *, recent_events: Sequence[tuple[str, datetime]], mql_at: datetime
) -> SlaPolicy:
    """The first policy, in file order, whose selector matches the lead; else the fallback."""
    for policy in config.policies:
        if policy.applies_when and policy.applies_when.matches(recent_events, mql_at):
            return policy
    return config.fallback


def decide_by(policy: SlaPolicy, start: datetime) -> datetime:
    """When sales must accept or reject a handoff created at `start`."""
    return _deadline(start, policy.decide_within_hours)


def qualify_by(policy: SlaPolicy, start: datetime) -> datetime:
    """When sales must qualify or return a lead accepted at `start`."""
    return _deadline(start, policy.qualify_within_hours)


def warn_at(policy: SlaPolicy, start: datetime, due: datetime) -> datetime:
    """The moment `policy.warn_at` of the time between `start` and `due` has passed."""
    if due < start:
        raise ValueError(f"due ({due.isoformat()}) is before start ({start.isoformat()})")
    return start + (due - start) * policy.warn_at


def _deadline(start: datetime, hours: float) -> datetime:
    return start + timedelta(hours=hours)


def _describe(exc: pydantic.ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
    )
