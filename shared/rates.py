"""Rates with their Wilson 95% interval, and time windows: the arithmetic of every figure
leadflow reports (feedback's return rates, scoring's backtests). Pure."""

import math
import re
from dataclasses import dataclass
from datetime import timedelta

_Z_95 = 1.959963984540054
_MAX_WINDOW = timedelta(days=3650)
_WINDOW_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
_WINDOW_PATTERN = re.compile(r"([0-9]+)([hdw])")


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
    digits, unit = match[1].lstrip("0"), match[2]
    if not digits:
        raise ValueError(f"window {text!r} must be longer than zero")
    # Compared before multiplying: 99999999999d is no timedelta at all (and 5000 digits no int).
    if len(digits) > 7 or int(digits) > _MAX_WINDOW // _WINDOW_UNITS[unit]:
        raise ValueError(f"window {text!r} is longer than the maximum of 3650 days")
    return int(digits) * _WINDOW_UNITS[unit]
