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

That search evaluates every decaying rule some 30 times, over each of its days when it has a
per-day cap, so it costs more the more varied a lead's history. `early_look` gives a moment no
later, in a few operations whatever the history: what scoring stores when a lead's events are
folded in (an active lead is planned again by its next event anyway). When that moment comes
and nothing meaningful has happened, the decay loop plans the exact one with `next_look`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta

from services.scoring.domain import LeadScore, _round_half_up
from services.scoring.score_state import (
    MICROS_PER_DAY,
    LeadState,
    LeadStateScorer,
    RuleTally,
    capped_days,
    micros,
    moment,
)

__all__ = ["HORIZON", "MEANINGFUL_CHANGE", "early_look", "meaningful", "next_look"]

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
    curves = _curves(scorer, state)
    if not curves:
        return None
    return _search(_Plan(scorer, curves, result, at, step))


def early_look(
    scorer: LeadStateScorer,
    state: LeadState,
    result: LeadScore,
    *,
    at: datetime,
    step: int = MEANINGFUL_CHANGE,
) -> datetime | None:
    """A moment after `at` no later than `next_look`'s (None only when that is None too), in a
    few operations however long and varied the lead's history.

    Each decaying rule's points at t are at least its points at `at` times 2^-((t - at) / its
    half-life): a day's cap and the rule's cap only hold points up for longer. So the positive
    rules' points now, all halving at the fastest of their half-lives, bound the score from
    below, and the penalties' the same way from above; the moment either bound reaches its
    level (with a cent a rule for rounding) comes before the score can. When a bound gives
    nothing (the score is that close already), the moment is `next_look`'s."""
    curves = _curves(scorer, state)
    if not curves:
        return None
    plan = _Plan(scorer, curves, result, at, step)
    waits: list[float] = []  # in days
    falling, rising = plan.falling, plan.rising
    if falling:
        # the score stays above down_to while others + rising now + F 2^(-d/h) - slack does
        need = plan.down_to + 0.5 + _EPSILON + _CENT * len(falling) - plan.others - plan.rising_now
        if need > 0:
            if plan.falling_now <= need:
                return _search(plan)
            waits.append(min(c.half_life for c in falling) * math.log2(plan.falling_now / need))
    if rising:
        # the score stays below up_to while others + falling now - R 2^(-d/h) + slack does
        need = plan.others + plan.falling_now + _CENT * len(rising) - (plan.up_to - 0.5 - _EPSILON)
        if need > 0:
            size = -plan.rising_now - _CENT * len(rising)
            if size <= need:
                return _search(plan)
            waits.append(min(c.half_life for c in rising) * math.log2(size / need))
    wait_us = min(waits, default=math.inf) * MICROS_PER_DAY
    if wait_us > _HORIZON_US:
        return None  # beyond the horizon next_look searches: it finds nothing either
    if wait_us < _PRECISION_US:
        return _search(plan)
    return moment(plan.at_us + int(wait_us))


_CENT = 0.01  # a rule's points are rounded to cents (half a cent each way), twice over
_EPSILON = 1e-6  # float sums


def _curves(scorer: LeadStateScorer, state: LeadState) -> list[_RuleCurve]:
    model = scorer.model
    return [
        _RuleCurve(scorer, i, state.tallies[i])
        for i in sorted(state.tallies)
        if scorer.half_life(i) is not None and model.engagement[i].points
    ]


class _Plan:
    """What both searches start from: the decaying rules split by sign, the score's other
    points, and the levels a meaningful change reaches."""

    def __init__(
        self, scorer: LeadStateScorer, curves: list[_RuleCurve], result: LeadScore, at: datetime, step: int
    ) -> None:
        self.rising = [c for c in curves if c.sign < 0]  # penalties fade towards zero
        self.falling = [c for c in curves if c.sign > 0]
        decaying = {c.rule_id for c in curves}
        self.others = math.fsum(
            c.points for c in result.contributions if c.kind != "fit" and c.rule not in decaying
        )
        self.at_us = micros(at)
        self.falling_now, self.rising_now = _sum(self.falling, self.at_us), _sum(self.rising, self.at_us)
        threshold, current = scorer.model.mql.min_score, result.score
        self.down_to = current - step if current < threshold else max(current - step, threshold - 1)
        self.up_to = current + step if current >= threshold else min(current + step, threshold)


def _search(plan: _Plan) -> datetime | None:
    """next_look's moment: a bisection on each bound, to the second."""
    others, falling, rising = plan.others, plan.falling, plan.rising
    falling_now, rising_now, down_to, up_to = plan.falling_now, plan.rising_now, plan.down_to, plan.up_to
    at_us = plan.at_us

    def fallen(us: int) -> bool:  # even if no penalty faded, the score is this low
        return _round_half_up(others + _sum(falling, us) + rising_now) <= down_to

    def risen(us: int) -> bool:  # even if nothing else decayed, the score is this high
        return _round_half_up(others + falling_now + _sum(rising, us)) >= up_to

    moments = [_first(at_us, fallen) if falling else None, _first(at_us, risen) if rising else None]
    found = [m for m in moments if m is not None]
    return moment(min(found)) if found else None


class _RuleCurve:
    """One decaying rule's points as a function of time, prepared for many evaluations: its
    days' weights sorted with running sums (the tally's `day_profile`), so a moment costs a
    binary search, not a pass over every day (the same arithmetic as LeadStateScorer.rule_points)."""

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
        self.weights, self.sums = tally.day_profile()

    def points(self, us: int) -> float:
        """The rule's points at `us` (microseconds since 1970, `score_state.micros`)."""
        factor = 2.0 ** ((self.origin_days - us / MICROS_PER_DAY) / self.half_life)
        if self.per_day is None:
            total = self.size * self.total * factor
        else:  # days still above their cap give the cap; the others their decayed weight
            total = capped_days(self.weights, self.sums, self.size * factor, self.per_day)
        if self.cap is not None and total > self.cap:
            total = float(self.cap)
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
