"""When a lead's decaying score next changes in a way that matters, so it can be looked at then.

Pure. Between events a score only moves by decay: the points of rules with positive points
shrink, those of penalty rules (negative points) shrink towards zero. A stored score must stay
true, but re-scoring every lead every hour would cost as much as the traffic, so each lead gets
one moment: the earliest at which its score could have crossed the MQL threshold (either way:
a lead in nurture stops being close, or a fading penalty lets it qualify) or moved by
`MEANINGFUL_CHANGE` points from the score stored. Between now and then nothing that matters can
happen; at that moment scoring re-scores it exactly and plans the next one.

The moment is found by bisection on two bounds that only move one way: the score at t is at
least (fixed + positive rules at t + penalty rules now) and at most (fixed + positive rules now
+ penalty rules at t). With no penalty rule decaying the lower bound is the score itself, so the
moment is when it happens, to the second.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable
from datetime import datetime, timedelta

from services.scoring.domain import LeadScore, _round_half_up
from services.scoring.score_state import MICROS_PER_DAY, LeadState, LeadStateScorer, RuleTally, micros, moment

__all__ = ["HORIZON", "MEANINGFUL_CHANGE", "meaningful", "next_look"]

MEANINGFUL_CHANGE = 5  # points: a change this big is announced with lead.scored
HORIZON = timedelta(days=3650)  # beyond this a decaying score is left alone
_PRECISION = timedelta(seconds=1)
# The search runs on whole microseconds since 1970 (`score_state.micros`): exact like the
# datetimes, without building one per step (each lead's look takes some 28 steps per curve).
_HORIZON_US = HORIZON // timedelta(microseconds=1)
_PRECISION_US = _PRECISION // timedelta(microseconds=1)


def meaningful(model_min_score: int, before: int, after: int, *, step: int = MEANINGFUL_CHANGE) -> bool:
    """Whether a score moving from `before` to `after` matters: it crossed the MQL threshold
    or moved by `step` points or more."""
    crossed = (before >= model_min_score) != (after >= model_min_score)
    return crossed or abs(after - before) >= step


def next_look(
    scorer: LeadStateScorer,
    state: LeadState,
    result: LeadScore,
    *,
    at: datetime,
    step: int = MEANINGFUL_CHANGE,
) -> datetime | None:
    """The earliest moment after `at` at which the lead's score, `result` as of `at`, could have
    changed meaningfully by decay alone; None when it never can (nothing decays)."""
    model = scorer.model
    curves = [
        _RuleCurve(scorer, i, state.tallies[i])
        for i in sorted(state.tallies)
        if scorer.half_life(i) is not None and model.engagement[i].points
    ]
    if not curves:
        return None
    rising = [c for c in curves if c.sign < 0]  # penalties fade towards zero
    falling = [c for c in curves if c.sign > 0]
    decaying = {c.rule_id for c in curves}
    others = math.fsum(c.points for c in result.contributions if c.kind != "fit" and c.rule not in decaying)
    at_us = micros(at)
    falling_now, rising_now = _sum(falling, at_us), _sum(rising, at_us)
    threshold, current = model.mql.min_score, result.score
    down_to = current - step if current < threshold else max(current - step, threshold - 1)
    up_to = current + step if current >= threshold else min(current + step, threshold)

    def fallen(us: int) -> bool:  # even if no penalty faded, the score is this low
        return _round_half_up(others + _sum(falling, us) + rising_now) <= down_to

    def risen(us: int) -> bool:  # even if nothing else decayed, the score is this high
        return _round_half_up(others + falling_now + _sum(rising, us)) >= up_to

    moments = [_first(at_us, fallen) if falling else None, _first(at_us, risen) if rising else None]
    found = [m for m in moments if m is not None]
    return moment(min(found)) if found else None


class _RuleCurve:
    """One decaying rule's points as a function of time, prepared for many evaluations: its
    days' weights sorted with running sums, so a moment costs a binary search, not a pass over
    every day (the same arithmetic as LeadStateScorer.rule_points)."""

    def __init__(self, scorer: LeadStateScorer, i: int, tally: RuleTally) -> None:
        rule = scorer.model.engagement[i]
        half_life = scorer.half_life(i)
        assert half_life is not None
        self.rule_id = f"engagement.{rule.id}"
        self.sign = 1 if rule.points > 0 else -1
        self.size, self.cap, self.per_day = float(abs(rule.points)), rule.cap, rule.cap_per_day
        self.origin_days = tally.origin / MICROS_PER_DAY
        self.half_life = half_life
        self.total = tally.weight
        self.weights = sorted(tally.days.values())  # ascending
        self.sums = list(itertools.accumulate(self.weights, initial=0.0))

    def points(self, us: int) -> float:
        """The rule's points at `us` (microseconds since 1970, `score_state.micros`)."""
        factor = 2.0 ** ((self.origin_days - us / MICROS_PER_DAY) / self.half_life)
        if self.per_day is None:
            total = self.size * self.total * factor
        else:  # days still above their cap give the cap; the others their decayed weight
            below = bisect.bisect_left(self.weights, self.per_day / (self.size * factor))
            total = (len(self.weights) - below) * self.per_day + self.size * factor * self.sums[below]
        if self.cap is not None:
            total = min(total, float(self.cap))
        return round(float(self.sign * total), 2)


def _sum(curves: list[_RuleCurve], us: int) -> float:
    return math.fsum(c.points(us) for c in curves)


def _first(at_us: int, reached: Callable[[int], bool]) -> int | None:
    """The first moment in (at, at + HORIZON] (microseconds since 1970) where `reached` (false,
    then true for good) holds, to the second, rounded up so that it holds then; None if it never
    does."""
    low, high = at_us, at_us + _HORIZON_US
    if not reached(high):
        return None
    while high - low > _PRECISION_US:
        middle = low + (high - low) // 2
        if reached(middle):
            high = middle
        else:
            low = middle
    return high
