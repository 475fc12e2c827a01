"""Return rates, their confidence intervals, and when a rate should raise or resolve an alert.

Pure calculations, no I/O except `load_feedback_config`.
"""

import math
import re
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Literal

import pydantic
import yaml
from pydantic import Field, field_validator

_Z_95 = 1.959963984540054
_MAX_WINDOW = timedelta(days=3650)
_WINDOW_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
_WINDOW_PATTERN = re.compile(r"(\d+)([hdw])")


@dataclass(frozen=True)
class RateFigure:
    """A rate with its Wilson 95% interval; rate and interval are None when nothing was decided."""

    numerator: int
    denominator: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None


def wilson_interval(successes: int, n: int, z: float = _Z_95) -> tuple[float, float]:
    """The Wilson score interval for `successes` out of `n`, clamped to [0, 1].

    Wilson rather than the normal approximation because rates here are small and counts
    modest, where the normal interval dips below zero and collapses at 0/n.
    """
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n ({n}), got {successes}")
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half_width = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    # At 0/n and n/n the bound equals the estimate exactly; pin it so rounding cannot leave
    # the estimate outside its own interval.
    low = 0.0 if successes == 0 else max(0.0, centre - half_width)
    high = 1.0 if successes == n else min(1.0, centre + half_width)
    return low, high


def rate_figure(numerator: int, denominator: int) -> RateFigure:
    """A rate such as the return rate, with its Wilson 95% interval.

    Return rate = leads sent back to marketing (rejected at review, or returned after
    acceptance) / handed-off leads that got a decision (accepted or rejected) in the window.
    The numerator counts among the leads in the denominator, so it can never exceed it.
    """
    if numerator < 0 or denominator < 0:
        raise ValueError(f"counts must not be negative, got {numerator}/{denominator}")
    if numerator > denominator:
        raise ValueError(f"numerator ({numerator}) exceeds denominator ({denominator})")
    if denominator == 0:
        return RateFigure(numerator, denominator, None, None, None)
    low, high = wilson_interval(numerator, denominator)
    return RateFigure(numerator, denominator, numerator / denominator, low, high)


def parse_window(text: str) -> timedelta:
    """A window such as "24h", "7d", "30d" or "2w": positive, at most 3650 days."""
    match = _WINDOW_PATTERN.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"window {text!r} is not a whole number followed by h, d or w (e.g. 24h, 30d, 2w)")
    count, unit = int(match[1]), match[2]
    if count == 0:
        raise ValueError(f"window {text!r} must be longer than zero")
    window = count * _WINDOW_UNITS[unit]
    if window > _MAX_WINDOW:
        raise ValueError(f"window {text!r} is longer than the maximum of 3650 days")
    return window


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
