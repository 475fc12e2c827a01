"""A lead's score after each of its events: the history replayed instant by instant.

Pure. Each point equals what `score_lead` gives for the events up to that instant, scored at
that instant, but the replay costs O(events x matching rules) instead of rescoring the whole
history at every step. `TimelineScorer.at_moments` scores the same replay at any moments
(the handoffs training and recommend learn from), decayed to each: the one code path for
"what would this model have scored then", shared by `leadflow backtest`, `model train` and
`model recommend`.

- fit, the grade and the profile's undesirables depend on the traits only: once per lead;
- the channel is fixed by the first instant that has one; an event undesirable, once fired,
  stays fired;
- an engagement rule keeps its points as weights |points| * 2^((t - t0)/half-life), so the
  decayed total at t is one multiplication; per-day caps keep each past day either capped (a
  constant) or below its cap for good (decay only shrinks it), in a heap by size.

Exactness: the running sums can differ from score_lead's exact sums in the last bits, so a
rule's points are only trusted when they are clear of a rounding step (x.xx5); near one, that
rule is recomputed exactly with score_lead's own arithmetic. Rules without decay are exact.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from operator import attrgetter
from typing import Any

from services.scoring.domain import (
    LeadEvent,
    _acquisition_channel,
    _channel,
    _describe_event,
    _grade,
    _matching_tiers,
    _round_half_up,
    _text,
    _undesirable_match,
    _where_matches,
    engagement_points,
    utc_day,
)
from services.scoring.model import GRADES, Decay, EngagementRule, Grade, ScoringModel

__all__ = [
    "LeadProfile",
    "MomentScore",
    "Qualification",
    "TimelinePoint",
    "TimelineScorer",
    "first_mql_at",
    "score_timeline",
]

# Events at one instant are scored together, so ties after (time, type) cannot change a point.
EVENT_ORDER = attrgetter("occurred_at", "event_type")

_RESCALE_HALF_LIVES = 256.0  # weights stay below 2^256, far from overflow
# Relative error allowed for running sums (actual: ~1e-13 plus ~1e-16 per event summed).
_TOLERANCE = 1e-9


@dataclass(frozen=True)
class TimelinePoint:
    at: datetime
    score: int
    grade: Grade
    disqualified: str | None
    meets_mql: bool


@dataclass(frozen=True)
class MomentScore:
    """A lead's rule verdict at a moment: what score_lead gives for its events up to and
    including that moment, scored at it, less the itemised behaviour contributions."""

    at: datetime
    score: int
    fit_points: int
    grade: Grade
    fit_rules: tuple[str, ...]  # the fit contributions' rules, as LeadScore.fit_rules orders them
    disqualified: str | None
    meets_mql: bool


@dataclass(frozen=True)
class Qualification:
    grade: Grade
    first_mql_at: datetime | None


def score_timeline(
    model: ScoringModel, *, email: str | None, traits: Mapping[str, Any], events: Sequence[LeadEvent]
) -> list[TimelinePoint]:
    """One point per distinct event instant, in time order (events may come in any order)."""
    return list(TimelineScorer(model).points(email=email, traits=traits, events=events))


def first_mql_at(
    model: ScoringModel, *, email: str | None, traits: Mapping[str, Any], events: Sequence[LeadEvent]
) -> datetime | None:
    """The first instant the lead meets the MQL rule, or None if it never does."""
    return TimelineScorer(model).qualify(email=email, traits=traits, events=events).first_mql_at


@dataclass(frozen=True)
class LeadProfile:
    """What the traits and email alone decide, for one lead under one model."""

    grade: Grade
    fit_points: int
    fit_rules: tuple[str, ...]  # biggest points first, as LeadScore orders its contributions
    fixed_points: tuple[float, ...]  # channel (from traits) and title/domain penalties
    channel_known: bool
    fixed_disqualifiers: Mapping[int, str]  # undesirable index -> detail
    could_qualify: bool


class TimelineScorer:
    """One model, prepared once, to replay many leads."""

    def __init__(self, model: ScoringModel) -> None:
        self.model = model
        self._decay = model.decay
        self._fit_groups = [rule.group_key for rule in model.fit]
        engagement: dict[str, list[tuple[int, EngagementRule]]] = {}
        for i, rule in enumerate(model.engagement):
            engagement.setdefault(rule.event, []).append((i, rule))
        self._engagement = engagement
        undesirable: dict[str, list[int]] = {}
        for k, u in enumerate(model.undesirables):
            if u.event is not None:
                undesirable.setdefault(u.event, []).append(k)
        self._event_undesirables = undesirable
        self._penalty = {k: float(u.points) for k, u in enumerate(model.undesirables) if u.points}
        self._disqualifiers = [k for k, u in enumerate(model.undesirables) if u.disqualify]
        self._good_grades = frozenset(GRADES[: GRADES.index(model.mql.min_grade) + 1])

    def points(
        self, *, email: str | None, traits: Mapping[str, Any], events: Sequence[LeadEvent]
    ) -> Iterator[TimelinePoint]:
        """The timeline, lazily: stop early and the rest is never computed."""
        profile = self.profile(email=email, traits=traits)
        rule = self.model.mql
        for at, score, disqualified in self._replay(profile, traits, sorted(events, key=EVENT_ORDER)):
            assert score is not None  # always computed without a floor
            meets = rule.is_met(score=score, grade=profile.grade, disqualified=disqualified)
            yield TimelinePoint(at, score, profile.grade, disqualified, meets)

    def qualify(
        self,
        *,
        email: str | None,
        traits: Mapping[str, Any],
        events: Sequence[LeadEvent],
        profile: LeadProfile | None = None,
    ) -> Qualification:
        """The lead's grade, and when it first meets the MQL rule (None: never).

        `profile` may come from a scorer that `reads_profiles_like` this one.
        """
        if profile is None:
            profile = self.profile(email=email, traits=traits)
        if not profile.could_qualify:  # a grade or profile no event can change
            return Qualification(profile.grade, None)
        min_score = self.model.mql.min_score
        ordered = sorted(events, key=EVENT_ORDER)
        for at, score, disqualified in self._replay(profile, traits, ordered, floor=min_score):
            if disqualified is not None:  # events cannot be undone: it stays disqualified
                break
            if score is not None and score >= min_score:
                return Qualification(profile.grade, at)
        return Qualification(profile.grade, None)

    def at_moments(
        self,
        *,
        email: str | None,
        traits: Mapping[str, Any],
        events: Sequence[LeadEvent],
        moments: Sequence[datetime],
        profile: LeadProfile | None = None,
    ) -> list[MomentScore]:
        """The lead's score at each moment (one per moment, in the order given): from the events
        up to and including it, decayed to it, as score_lead scores them. One replay serves
        every moment, so a lead decided in many cycles costs one pass over its events."""
        if any(m.tzinfo is None for m in moments):
            raise ValueError("moments must be timezone-aware")
        if profile is None:
            profile = self.profile(email=email, traits=traits)
        rule = self.model.mql
        ordered = sorted(events, key=EVENT_ORDER)
        by_moment = {
            at: MomentScore(
                at,
                score,
                profile.fit_points,
                profile.grade,
                profile.fit_rules,
                disqualified,
                rule.is_met(score=score, grade=profile.grade, disqualified=disqualified),
            )
            for at, score, disqualified in self._replay(
                profile, traits, ordered, moments=sorted(set(moments))
            )
            if score is not None  # always computed without a floor
        }
        return [by_moment[m] for m in moments]

    def reads_profiles_like(self, other: TimelineScorer) -> bool:
        """Whether both models judge a lead's traits and email alike, so one profile serves both."""
        mine, theirs = self.model, other.model
        return (mine.fit, mine.grades, mine.channel, mine.undesirables, mine.mql.min_grade) == (
            theirs.fit,
            theirs.grades,
            theirs.channel,
            theirs.undesirables,
            theirs.mql.min_grade,
        )

    def profile(self, *, email: str | None, traits: Mapping[str, Any]) -> LeadProfile:
        """What the traits and email alone decide under this model."""
        model = self.model
        tiers = list(_matching_tiers(model.fit, self._fit_groups, traits))
        fit_points = sum(rule.points for rule, _ in tiers)
        grade = _grade(model.grades, fit_points)
        scoring = sorted((rule for rule, _ in tiers if rule.points), key=lambda r: (-abs(r.points), r.id))
        fit_rules = tuple(f"fit.{rule.id}" for rule in scoring)
        channel_known = _text(traits.get("channel")) is not None
        fixed = [c.points for c in _channel(model, traits, ())] if channel_known else []
        disqualifiers: dict[int, str] = {}
        for k, rule in enumerate(model.undesirables):
            if rule.event is None and (detail := _undesirable_match(rule, email, traits, ())):
                if rule.disqualify:
                    disqualifiers[k] = detail
                else:
                    fixed.append(self._penalty[k])
        could_qualify = grade in self._good_grades and not disqualifiers
        return LeadProfile(
            grade, fit_points, fit_rules, tuple(fixed), channel_known, disqualifiers, could_qualify
        )

    def _replay(
        self,
        profile: LeadProfile,
        traits: Mapping[str, Any],
        events: Sequence[LeadEvent],
        floor: int | None = None,
        moments: Sequence[datetime] | None = None,
    ) -> Iterator[tuple[datetime, int | None, str | None]]:
        """(instant, score, disqualified) for each distinct instant of the time-ordered events;
        with `moments` (time-ordered), for each moment instead, counting the events up to and
        including it.

        With a `floor`, the score is None where it is surely below it: computing it exactly
        costs more than bounding it.
        """
        if not events and not moments:
            return
        # Weights are kept relative to the first event (with none, no points depend on it).
        origin = events[0].occurred_at if events else (moments or ())[0]
        if origin.tzinfo is None:
            raise ValueError("event times must be timezone-aware")
        pending = iter(moments or ())
        moment = next(pending, None)
        tallies: dict[int, _RuleTally] = {}
        most = 0.0  # the sum of the tallies' `most`: the engagement score can never exceed it
        fired: set[int] = set()  # event undesirables seen
        # Channel and penalty points are whole numbers, so adding them up front is exact.
        fixed = sum(profile.fixed_points)
        channel_known = profile.channel_known
        disqualified = self._disqualified(profile, fired)
        start, n = 0, len(events)
        while start < n:
            at = events[start].occurred_at
            while moment is not None and moment < at:  # the moments before this instant
                yield moment, self._score_at(moment, origin, fixed, most, tallies, None), disqualified
                moment = next(pending, None)
            if moments is not None and moment is None:
                return  # no moment left to score
            end = start + 1
            while end < n and events[end].occurred_at == at:
                end += 1
            instant = events[start:end]
            start = end
            days = (at - origin).total_seconds() / 86_400
            day = utc_day(at)
            fresh: list[int] = []
            for event in instant:
                most += self._count(event, tallies, days, day)
                fresh += self._fire(event, fired)
            if fresh:
                fixed += sum(self._penalty.get(k, 0.0) for k in fresh)
                disqualified = self._disqualified(profile, fired)
            if not channel_known and _acquisition_channel(traits, instant) is not None:
                # Earlier instants had no channel, so this one's earliest candidate is the first.
                fixed += sum(c.points for c in _channel(self.model, traits, instant))
                channel_known = True
            if moments is None:
                yield at, self._score_at(at, origin, fixed, most, tallies, floor), disqualified
        while moment is not None:  # the moments after the last event
            yield moment, self._score_at(moment, origin, fixed, most, tallies, None), disqualified
            moment = next(pending, None)

    def _score_at(
        self,
        at: datetime,
        origin: datetime,
        fixed: float,
        most: float,
        tallies: Mapping[int, _RuleTally],
        floor: int | None,
    ) -> int | None:
        """The score at `at` (no earlier than the last event counted) from the running state."""
        if not tallies:
            return _round_half_up(fixed)
        if floor is not None and fixed + most + 0.01 * len(tallies) < floor - 0.5:
            # Even if no point had decayed, the score, the sum of points rounded to cents
            # (0.005 up at most each), would stay below floor - 0.5 and round down.
            return None
        days = (at - origin).total_seconds() / 86_400
        earned = [tally.points_at(days, at) for tally in tallies.values()]
        return _round_half_up(math.fsum([fixed, *earned]))

    def _count(self, event: LeadEvent, tallies: dict[int, _RuleTally], days: float, day: date) -> float:
        """Count the event under the first engagement rule it matches; how much `most` grew."""
        for i, rule in self._engagement.get(event.event_type, ()):
            if not rule.where or _where_matches(rule.where, event):
                if i not in tallies:
                    tallies[i] = _RuleTally(rule, self._decay)
                return tallies[i].add(event.occurred_at, days, day)
        return 0.0

    def _fire(self, event: LeadEvent, fired: set[int]) -> list[int]:
        """The undesirable rules the event fires that had not fired before."""
        fresh = [
            k
            for k in self._event_undesirables.get(event.event_type, ())
            if k not in fired and _where_matches(self.model.undesirables[k].where, event)
        ]
        fired.update(fresh)
        return fresh

    def _disqualified(self, profile: LeadProfile, fired: set[int]) -> str | None:
        for k in self._disqualifiers:  # model order: the first that applies is reported
            rule = self.model.undesirables[k]
            if k in profile.fixed_disqualifiers:
                return f"undesirable.{rule.id}: {profile.fixed_disqualifiers[k]}"
            if k in fired:
                return f"undesirable.{rule.id}: {_describe_event(str(rule.event), rule.where)} tracked"
        return None


class _RuleTally:
    """One engagement rule's points over a lead's events, added in time order.

    Sizes only (a rule's points all share one sign). An event at `days` (since the lead's
    first event) weighs |points| * 2^((days - origin) / half-life); `linear` sums the weights
    whose decayed sum is not capped, `today` the current day's, and `capped` holds past days
    still above cap_per_day. Without decay every weight is |points| and all sums are exact.
    """

    __slots__ = (
        "cap",
        "capped",
        "closed_most",
        "count_today",
        "day",
        "decay",
        "half_life",
        "linear",
        "most",
        "origin",
        "per_day",
        "rule",
        "size",
        "times",
        "today",
    )

    def __init__(self, rule: EngagementRule, decay: Decay | None) -> None:
        self.rule, self.decay = rule, decay
        self.size = float(abs(rule.points))
        self.cap, self.per_day = rule.cap, rule.cap_per_day
        self.half_life = rule.half_life(decay)
        self.times: list[datetime] = []
        self.origin = self.linear = self.today = 0.0
        self.day: date | None = None
        self.capped: list[float] = []
        self.count_today, self.closed_most = 0, 0.0  # for `most`
        self.most = 0.0

    def add(self, occurred_at: datetime, days: float, day: date) -> float:
        """Count an event no earlier than the last one; how much `most` grew."""
        self.times.append(occurred_at)
        weight = self.size
        if self.half_life is not None:
            half_lives = (days - self.origin) / self.half_life
            if half_lives > _RESCALE_HALF_LIVES:
                self._rescale(2.0**-half_lives)
                self.origin = days
            else:
                weight *= 2.0**half_lives
        if self.per_day is None:
            self.linear += weight
        else:
            if day != self.day:
                if self.day is not None:
                    heapq.heappush(self.capped, self.today)
                    self.closed_most += min(self.size * self.count_today, self.per_day)
                self.day, self.today, self.count_today = day, 0.0, 0
            self.today += weight
            self.count_today += 1
        before, self.most = self.most, self._most()
        return self.most - before

    def _most(self) -> float:
        """The most the rule can give from these events at any time: caps without decay."""
        if self.rule.points <= 0:  # penalties give at most nothing
            return 0.0
        if self.per_day is None:
            most = self.size * len(self.times)
        else:
            most = self.closed_most + min(self.size * self.count_today, self.per_day)
        return most if self.cap is None else min(most, self.cap)

    def _rescale(self, factor: float) -> None:
        self.linear *= factor
        self.today *= factor
        self.capped = [weight * factor for weight in self.capped]  # order is kept

    def points_at(self, days: float, at: datetime) -> float:
        """The rule's points at `at` (= `days`, not before the last event), rounded as score_lead does."""
        half_life, per_day = self.half_life, self.per_day
        factor = 1.0 if half_life is None else 2.0 ** ((self.origin - days) / half_life)
        if per_day is None:
            total = self.linear * factor
        else:
            limit, capped = per_day / factor, self.capped
            while capped and capped[0] <= limit:  # decayed below the cap; stays below
                self.linear += heapq.heappop(capped)
            total = self.linear * factor + min(self.today * factor, per_day) + len(capped) * per_day
        if self.cap is not None and total > self.cap:
            total = self.cap
        if half_life is not None:
            cents = total * 100
            if abs(cents - math.floor(cents) - 0.5) <= _TOLERANCE * 100 * self.size * len(self.times):
                # Too close to a rounding step to trust the running sums: redo it exactly.
                return round(engagement_points(self.rule, self.decay, self.times, at), 2)
        return round(total if self.rule.points > 0 else -total, 2)
