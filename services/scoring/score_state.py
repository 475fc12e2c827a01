"""A lead's running score state: what its score needs, folded in event by event.

Pure. Storing this beside the lead lets scoring add a batch's events and score the lead without
reading its history, so the cost of an event does not grow with the lead's past:

- each engagement rule keeps its count and its events as weights 2^((t - origin) / half-life)
  (summed, or per UTC day when the rule has a per-day cap), so the decayed points at any `at`
  after the events are one multiplication per sum. Addition does not care about order, so an
  event older than the others, or arriving late, folds in like any other;
- the event undesirables fired, the earliest channel / campaign / source and the latest few
  events (all order-independent: a set, minima, the top N by time);
- fit, the grade and the profile's undesirables are read from the traits when scoring.

A duplicate is never folded twice: the caller folds only events the store took as new.

Exactness: `LeadStateScorer.score` gives exactly what `domain.score_lead` gives over the same
events, or None when it cannot be sure: a rule's running sum too close to a rounding step
(x.xx5) to trust its last bits, a "decayed" too close to call, or events dated after `at`.
Then the caller scores the whole history with `score_lead` (rare: about once in 10^7 scores
per event behind the sum).
"""

from __future__ import annotations

import binascii
import bisect
import hashlib
import heapq
import itertools
import json
import math
import operator
import sys
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from services.scoring.domain import (
    Contribution,
    LeadEvent,
    LeadScore,
    _channel,
    _describe_event,
    _fit,
    _grade,
    _round_half_up,
    _text,
    _undesirable_match,
    _where_matches,
    engagement_detail,
)
from services.scoring.model import EngagementRule, ScoringModel

__all__ = ["LeadState", "LeadStateScorer", "PackedDays", "RuleTally", "capped_days", "model_key"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROS_PER_DAY = 86_400_000_000
RECENT_KEPT = 20  # as many as an MQL carries (lifecycle.RECENT_EVENTS_CARRIED)
_RESCALE_HALF_LIVES = 512.0  # weights stay within 2^±512, far from overflow
# Relative error allowed for running sums (actual: ~1e-13 plus ~1e-16 per event summed).
_TOLERANCE = 1e-9
# Part of the model key. 2: per-day weights packed (`PackedDays`). A release reads states of its
# own format only and rebuilds the others from the history, so during a rolling update old and
# new instances each rebuild what the other wrote instead of failing to read it.
_STATE_FORMAT = 2


def micros(moment: datetime) -> int:
    """A tz-aware moment as whole microseconds since 1970 (exact, unlike a float timestamp)."""
    return (moment - EPOCH) // timedelta(microseconds=1)


def moment(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def model_key(model: ScoringModel) -> str:
    """What a state depends on (which rule an event counts for, half-lives, undesirables): a
    state folded under another key is rebuilt from the history."""
    parts = {
        "format": _STATE_FORMAT,
        "engagement": [rule.model_dump(mode="json") for rule in model.engagement],
        "decay": model.decay.model_dump(mode="json") if model.decay else None,
        "undesirables": [rule.model_dump(mode="json") for rule in model.undesirables],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


@dataclass(eq=False)
class RuleTally:
    """One engagement rule's events: their number, oldest time and weights.

    A weight is 2^((t - origin) / half-life) (1 without decay); `weight` sums them when the rule
    has no per-day cap, `days` sums them per UTC day (ordinal) when it has one.

    A tally read from storage keeps its days as stored (`PackedDays`) until an event changes
    them: scoring a lead and writing its state back then make no object per day for a rule the
    batch's events did not touch (its days cost a copy of their bytes, not a pass in Python).
    """

    count: int = 0
    oldest: int | None = None  # microseconds
    origin: int = 0  # microseconds
    weight: float = 0.0
    _days: dict[int, float] | None = field(default_factory=dict, repr=False)
    _packed: PackedDays | None = field(default=None, repr=False)  # while the days are unchanged
    # The days' weights ascending and their running sums, made when first asked for after a
    # change: a score and its decay planning (tens of moments) then cost a binary search each,
    # not a pass over every day of the lead's history.
    _profile: tuple[Sequence[float], Sequence[float]] | None = field(default=None, init=False, repr=False)

    @property
    def days(self) -> dict[int, float]:
        """The days' weights by day (ordinal)."""
        if self._days is None:
            assert self._packed is not None
            self._days = self._packed.days()
        return self._days

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RuleTally):
            return NotImplemented
        mine = (self.count, self.oldest, self.origin, self.weight, self.days)
        return mine == (other.count, other.oldest, other.origin, other.weight, other.days)

    def day_profile(self) -> tuple[Sequence[float], Sequence[float]]:
        """(weights, sums): the days' weights ascending, and sums[k] the k smallest summed."""
        if self._profile is None:
            if self._packed is not None:
                self._profile = self._packed.profile()
            else:
                weights = sorted(self.days.values())
                self._profile = weights, list(itertools.accumulate(weights, initial=0.0))
        return self._profile

    def add(self, at_us: int, day: int, half_life: float | None, per_day: bool) -> None:
        if self.count == 0:
            self.origin = at_us
        self.count += 1
        self.oldest = at_us if self.oldest is None else min(self.oldest, at_us)
        weight = 1.0
        if half_life is not None:
            half_lives = (at_us - self.origin) / (half_life * MICROS_PER_DAY)
            if half_lives > _RESCALE_HALF_LIVES:
                self._rescale(2.0**-half_lives)
                self.origin = at_us
            else:
                weight = 2.0**half_lives
        if per_day:
            days = self.days
            days[day] = days.get(day, 0.0) + weight
            self._changed()
        else:
            self.weight += weight

    def _rescale(self, factor: float) -> None:
        self.weight *= factor
        self._days = {day: weight * factor for day, weight in self.days.items()}
        self._changed()

    def _changed(self) -> None:
        self._packed = self._profile = None

    def as_json(self) -> dict[str, Any]:
        packed = self._packed if self._packed is not None else PackedDays.of(self.days)
        return {"n": self.count, "old": self.oldest, "o": self.origin, "w": self.weight, **packed.as_json()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RuleTally:
        packed = PackedDays(data["dk"], data["dw"], data["ds"])
        return cls(int(data["n"]), data["old"], int(data["o"]), float(data["w"]), _days=None, _packed=packed)


@dataclass(frozen=True)
class PackedDays:
    """A tally's days as stored: the days (int32), their weights (float64) ascending and the
    weights' running sums, each little-endian in base64 (a state is JSON). The ascending weights
    and their sums are `RuleTally.day_profile` as it is, without a sort or an object per day."""

    days_text: str
    weights_text: str
    sums_text: str

    @classmethod
    def of(cls, days: Mapping[int, float]) -> PackedDays:
        by_weight = sorted(days.items(), key=operator.itemgetter(1))
        weights = [weight for _, weight in by_weight]
        sums = itertools.accumulate(weights, initial=0.0)
        return cls(
            _base64_of(array("i", [day for day, _ in by_weight])),
            _base64_of(array("d", weights)),
            _base64_of(array("d", sums)),
        )

    def days(self) -> dict[int, float]:
        days = _array_of("i", self.days_text).tolist()
        return dict(zip(days, _array_of("d", self.weights_text).tolist(), strict=True))

    def profile(self) -> tuple[Sequence[float], Sequence[float]]:
        return _array_of("d", self.weights_text), _array_of("d", self.sums_text)

    def as_json(self) -> dict[str, str]:
        return {"dk": self.days_text, "dw": self.weights_text, "ds": self.sums_text}


_LITTLE_ENDIAN = sys.byteorder == "little"


def _base64_of(values: array[Any]) -> str:
    """The values as little-endian bytes, in base64 (a state is JSON)."""
    if not _LITTLE_ENDIAN:
        values = array(values.typecode, values)
        values.byteswap()
    return binascii.b2a_base64(values.tobytes(), newline=False).decode("ascii")


def _array_of(typecode: str, text: str) -> array[Any]:
    values = array(typecode)
    values.frombytes(binascii.a2b_base64(text))  # base64's b64decode: 3x the time
    if not _LITTLE_ENDIAN:
        values.byteswap()
    return values


@dataclass
class LeadState:
    """Everything a lead's score and MQL announcement need from its events, folded."""

    events: int = 0
    latest: int | None = None  # microseconds of the latest event
    tallies: dict[int, RuleTally] = field(default_factory=dict)  # engagement rule index -> tally
    fired: set[int] = field(default_factory=set)  # event undesirables seen (rule indices)
    channel: tuple[int, str, str] | None = None  # (time, value, property) earliest with a channel
    campaign: tuple[int, str] | None = None
    source: tuple[int, str] | None = None
    recent: list[tuple[int, str]] = field(default_factory=list)  # the latest events, (time, type)

    @property
    def latest_at(self) -> datetime | None:
        return moment(self.latest) if self.latest is not None else None

    def recent_events(self) -> list[tuple[str, datetime]]:
        """The latest events, oldest first, as (type, time)."""
        return [(kind, moment(us)) for us, kind in sorted(self.recent)]

    def first_touch_values(self) -> tuple[str | None, str | None, str | None]:
        """(channel, campaign, source) of the earliest events that name them."""
        return (
            self.channel[1] if self.channel else None,
            self.campaign[1] if self.campaign else None,
            self.source[1] if self.source else None,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "latest": self.latest,
            "tallies": {str(i): t.as_json() for i, t in self.tallies.items()},
            "fired": sorted(self.fired),
            "channel": list(self.channel) if self.channel else None,
            "campaign": list(self.campaign) if self.campaign else None,
            "source": list(self.source) if self.source else None,
            "recent": [list(r) for r in self.recent],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LeadState:
        channel, campaign, source = data["channel"], data["campaign"], data["source"]
        return cls(
            events=int(data["events"]),
            latest=data["latest"],
            tallies={int(i): RuleTally.from_json(t) for i, t in data["tallies"].items()},
            fired=set(data["fired"]),
            channel=(int(channel[0]), channel[1], channel[2]) if channel else None,
            campaign=(int(campaign[0]), campaign[1]) if campaign else None,
            source=(int(source[0]), source[1]) if source else None,
            recent=[(int(us), kind) for us, kind in data["recent"]],
        )


class LeadStateScorer:
    """One model, prepared once: folds events into states and scores states."""

    def __init__(self, model: ScoringModel) -> None:
        self.model = model
        self.key = model_key(model)
        self._rules: dict[str, list[tuple[int, EngagementRule]]] = {}
        for i, rule in enumerate(model.engagement):
            self._rules.setdefault(rule.event, []).append((i, rule))
        self._half_lives = [rule.half_life(model.decay) for rule in model.engagement]
        self._event_undesirables: dict[str, list[int]] = {}
        for k, u in enumerate(model.undesirables):
            if u.event is not None:
                self._event_undesirables.setdefault(u.event, []).append(k)

    # --- folding --------------------------------------------------------------------------

    def fold(self, state: LeadState, events: Iterable[LeadEvent]) -> LeadState:
        """The state with these events added (in any order); changes and returns `state`."""
        for event in events:
            self._fold_one(state, event)
        return state

    def _fold_one(self, state: LeadState, event: LeadEvent) -> None:
        if event.occurred_at.tzinfo is None:
            raise ValueError("event times must be timezone-aware")
        us = micros(event.occurred_at)
        state.events += 1
        state.latest = us if state.latest is None else max(state.latest, us)
        for i, rule in self._rules.get(event.event_type, ()):
            if not rule.where or _where_matches(rule.where, event):
                tally = state.tallies.setdefault(i, RuleTally())
                day = event.occurred_at.astimezone(UTC).toordinal()
                tally.add(us, day, self._half_lives[i], rule.cap_per_day is not None)
                break
        for k in self._event_undesirables.get(event.event_type, ()):
            if k not in state.fired and _where_matches(self.model.undesirables[k].where, event):
                state.fired.add(k)
        self._fold_touch(state, us, event)
        heapq.heappush(state.recent, (us, event.event_type))
        if len(state.recent) > RECENT_KEPT:
            heapq.heappop(state.recent)  # the earliest goes

    @staticmethod
    def _fold_touch(state: LeadState, us: int, event: LeadEvent) -> None:
        props = event.properties
        for key in ("channel", "utm_medium"):  # as domain._acquisition_channel reads it
            if value := _text(props.get(key)):
                if state.channel is None or (us, value, key) < state.channel:
                    state.channel = (us, value, key)
                break
        for names, slot in ((("campaign", "utm_campaign"), "campaign"), (("source", "utm_source"), "source")):
            for name in names:  # as lifecycle.first_touch reads them
                if value := props.get(name):
                    found: tuple[int, str] | None = getattr(state, slot)
                    if found is None or (us, str(value)) < found:
                        setattr(state, slot, (us, str(value)))
                    break

    # --- scoring --------------------------------------------------------------------------

    def score(
        self, state: LeadState, *, email: str | None, traits: Mapping[str, Any], at: datetime
    ) -> LeadScore | None:
        """What score_lead gives for the state's events at `at`, or None when not sure."""
        if at.tzinfo is None:
            raise ValueError("`at` must be timezone-aware")
        at_us = micros(at)
        if state.latest is not None and state.latest > at_us:
            return None  # events after `at` count undecayed: not a weighted sum
        model = self.model
        fit = list(_fit(model.fit, traits))
        behaviour = list(self._channel(state, traits))
        for i in sorted(state.tallies):
            found = self._engagement(i, state.tallies[i], at_us)
            if found is None:
                return None
            if found.points:
                behaviour.append(found)
        disqualified: str | None = None
        for k, rule in enumerate(model.undesirables):
            if rule.event is None:
                detail = _undesirable_match(rule, email, traits, ())
            else:
                detail = f"{_describe_event(rule.event, rule.where)} tracked" if k in state.fired else None
            if detail is None:
                continue
            if rule.points is not None:
                behaviour.append(
                    Contribution(f"undesirable.{rule.id}", "undesirable", float(rule.points), detail)
                )
            if rule.disqualify and disqualified is None:
                disqualified = f"undesirable.{rule.id}: {detail}"
        fit_points = sum(int(c.points) for c in fit)
        return LeadScore(
            score=_round_half_up(math.fsum(c.points for c in behaviour)),
            fit_points=fit_points,
            grade=_grade(model.grades, fit_points),
            contributions=tuple(sorted(fit + behaviour, key=lambda c: (-abs(c.points), c.rule))),
            disqualified=disqualified,
            model_version=model.version,
        )

    def _channel(self, state: LeadState, traits: Mapping[str, Any]) -> list[Contribution]:
        if _text(traits.get("channel")) is not None or state.channel is None:
            return list(_channel(self.model, traits, ()))
        us, value, key = state.channel
        return list(_channel(self.model, traits, (LeadEvent("", moment(us), {key: value}),)))

    def half_life(self, i: int) -> float | None:
        """Engagement rule i's half-life in days (None: it does not decay)."""
        return self._half_lives[i]

    def rule_points(self, i: int, tally: RuleTally, at: datetime) -> float:
        """Engagement rule i's points at `at` (after the tally's events), rounded to cents, from
        the running sums alone: what decay_moments plans with (scoring itself checks them)."""
        total = self._size_at(i, tally, micros(at))
        return round(total if self.model.engagement[i].points > 0 else -total, 2)

    def _size_at(self, i: int, tally: RuleTally, at_us: int) -> float:
        rule, half_life = self.model.engagement[i], self._half_lives[i]
        size = float(abs(rule.points))
        factor = 1.0 if half_life is None else 2.0 ** ((tally.origin - at_us) / (half_life * MICROS_PER_DAY))
        if rule.cap_per_day is None:
            total = size * tally.weight * factor
        else:
            total = capped_days(*tally.day_profile(), size * factor, rule.cap_per_day)
        if rule.cap is not None and total > rule.cap:
            total = float(rule.cap)
        return total

    def _engagement(self, i: int, tally: RuleTally, at_us: int) -> Contribution | None:
        """The rule's contribution at `at_us` (points 0: none), or None when not sure."""
        rule, half_life = self.model.engagement[i], self._half_lives[i]
        size = float(abs(rule.points))
        total = self._size_at(i, tally, at_us)
        if half_life is not None:
            cents = total * 100
            if abs(cents - math.floor(cents) - 0.5) <= _TOLERANCE * 100 * size * tally.count:
                return None  # too close to a rounding step to trust the running sum's last bits
        points = round(total if rule.points > 0 else -total, 2)
        decayed = False
        if points and half_life is not None:
            called = _decayed(size, tally, at_us, half_life)
            if called is None:
                return None
            decayed = called
        detail = engagement_detail(rule, count=tally.count, days=len(tally.day_profile()[0]), decayed=decayed)
        return Contribution(f"engagement.{rule.id}", "engagement", points, detail)


def capped_days(weights: Sequence[float], sums: Sequence[float], scale: float, per_day: int) -> float:
    """The sum over days of min(scale x weight, per_day), from a tally's `day_profile`: the days
    at or above per_day / scale give their cap, the others (the smallest) their scaled weight."""
    if scale <= 0.0:  # decayed past what a float holds
        return 0.0
    below = bisect.bisect_left(weights, per_day / scale)
    return (len(weights) - below) * per_day + scale * sums[below]


def _decayed(size: float, tally: RuleTally, at_us: int, half_life: float) -> bool | None:
    """Whether score_lead calls the rule's points decayed (their exact sum below size x count)."""
    assert tally.oldest is not None
    if tally.oldest >= at_us:
        return False  # every event at `at`: each counts in full, exactly
    oldest_short = size * (1.0 - 0.5 ** ((at_us - tally.oldest) / (half_life * MICROS_PER_DAY)))
    full = size * tally.count
    if oldest_short > 4 * math.ulp(full):
        return True
    return None  # decayed by less than the sum's last bits: only the exact sum can tell
