"""When a return rate should raise or resolve an alert, and the feedback settings.

Pure calculations, no I/O except `load_feedback_config`.
"""

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Literal

import pydantic
import yaml
from pydantic import Field, field_validator

from shared.rates import RateFigure, parse_window, rate_figure, wilson_interval

__all__ = [
    "AlertDecision",
    "AlertSeverity",
    "FeedbackConfig",
    "FeedbackConfigError",
    "RateFigure",
    "decide_alert",
    "load_feedback_config",
    "parse_window",
    "rate_figure",
    "wilson_interval",
]


class AlertSeverity(StrEnum):
    WATCH = "watch"
    CONFIRMED = "confirmed"


@dataclass(frozen=True)
class AlertDecision:
    action: Literal["raise", "resolve", "keep"]
    # Set only when raising; an open alert keeps the severity it was raised with.
    severity: AlertSeverity | None = None


def decide_alert(
    figure: RateFigure, *, threshold: float, min_decisions: int, currently_open: bool
) -> AlertDecision:
    """Raise or resolve an alert on a rate crossing `threshold`; otherwise keep its state.

    Raising and resolving each happen once per crossing: an open alert above the threshold,
    or a closed one below it, is kept as it is. Too few decisions never raise an alert.
    """
    if currently_open:
        if figure.rate is None or figure.rate <= threshold:
            return AlertDecision("resolve")
        return AlertDecision("keep")
    if figure.rate is None or figure.rate <= threshold or figure.denominator < min_decisions:
        return AlertDecision("keep")
    assert figure.ci_low is not None  # a figure with a rate always has an interval
    # Confirmed when even the interval's lower bound clears the threshold.
    confirmed = figure.ci_low > threshold
    return AlertDecision("raise", AlertSeverity.CONFIRMED if confirmed else AlertSeverity.WATCH)


class FeedbackConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    threshold: float = Field(default=0.10, gt=0, lt=1)
    min_decisions: int = Field(default=20, ge=1)
    window: str = "30d"

    @field_validator("window")
    @classmethod
    def _window_parses(cls, value: str) -> str:
        parse_window(value)
        return value

    @property
    def window_length(self) -> timedelta:
        return parse_window(self.window)


class FeedbackConfigError(ValueError):
    """The feedback file cannot be used; the message names the file and what is wrong."""


def load_feedback_config(path: str | Path) -> FeedbackConfig:
    """Read and validate the feedback file; an empty file means all defaults."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise FeedbackConfigError(f"{path}: cannot read feedback config: {exc}") from exc
    try:
        return FeedbackConfig.model_validate(raw or {})
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in err['loc']) or '(top level)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise FeedbackConfigError(f"{path}: invalid feedback config: {problems}") from exc
