"""A lead's running feature state: what the predictive model's features need, folded in event
by event, so a judged rescore reads no history (`features.lead_features` reads it all).

Pure. Held per key (an event type, or `rule:<id>` of the first engagement rule an event
matches) and per website section:

- counts and the latest time (order-independent: a sum and a maximum);
- the times of the events that can still count as `recent:` for a moment at or after the
  newest event (those from the newest minus RECENT_DAYS on; older ones never will again), so
  the recent window is exact to the microsecond. A window count exact at any later moment
  needs those times, so this part holds the last 30 days' events (not the history): packed
  as an 8-byte time and two 2-byte key numbers each, so a busy lead's state stays cheap;
- the distinct active days: their count, with the set of the last DAYS_KEPT days beside it,
  so a late event tells a new day from a known one. An event older than that (rare: a
  backfill) cannot tell and marks the state inexact: the caller rebuilds it from the history
  (`build`, which folds oldest day first and so is always exact);
- the earliest event naming a channel (the least value on a tie, as `features.first_channel`).

A duplicate is never folded twice: the caller folds only events the store took as new, as
it does for the score state.

`features_at(state, ...)` gives exactly what `lead_features` gives over the same events (under
the rules the state was folded with) at a
moment `at` at or after the newest event (live scoring); None before it (the caller then
builds a state from the events up to `at`).

The state names event types, rule ids and website sections, never a person.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import sys
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.scoring.domain import LeadEvent, first_engagement_rule
from services.scoring.features import (
    RECENT_DAYS,
    AccountFacts,
    RuleVerdict,
    event_channel,
    named,
    page_section,
    put_account,
    put_profile,
    put_verdict,
)
from services.scoring.model import ScoringModel
from services.scoring.score_state import MICROS_PER_DAY, micros, moment

__all__ = ["DAYS_KEPT", "FeatureState", "FeatureStateFolder", "build", "features_at", "features_key"]

RECENT_US = RECENT_DAYS * MICROS_PER_DAY
NO_RULE = 0xFFFF
DAYS_KEPT = 3 * RECENT_DAYS  # how late an event may come and still fold in exactly
_SECONDS_PER_DAY = 86_400.0
_STATE_FORMAT = 1


def features_key(model: ScoringModel) -> str:
    """What a feature state depends on (which rule an event counts for): a state folded under
    another key is rebuilt from the history."""
    parts = {
        "format": _STATE_FORMAT,
        "engagement": [rule.model_dump(mode="json") for rule in model.engagement],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


@dataclass
class RecentWindow:
    """The events that may still count as recent, in time order: each one's time, the number
    of its event type's key and of its rule's key (NO_RULE: none), numbers into `keys`."""

    keys: list[str] = field(default_factory=list)
    times: array[int] = field(default_factory=lambda: array("q"))  # microseconds, sorted
    types: array[int] = field(default_factory=lambda: array("H"))
    rules: array[int] = field(default_factory=lambda: array("H"))

    def add(self, us: int, event_type: str, rule: str | None) -> None:
        i = bisect.bisect_right(self.times, us)
        self.times.insert(i, us)
        self.types.insert(i, self._number(event_type))
        self.rules.insert(i, NO_RULE if rule is None else self._number(rule))

    def _number(self, key: str) -> int:
        try:
            return self.keys.index(key)
        except ValueError:
            self.keys.append(key)
            return len(self.keys) - 1

    def drop_before(self, us: int) -> None:
        if self.times and self.times[0] < us:
            i = bisect.bisect_left(self.times, us)
            del self.times[:i], self.types[:i], self.rules[:i]
            if not self.times:
                self.keys.clear()

    def counts_since(self, us: int) -> dict[str, int]:
        """Events per key from `us` on (a type and a rule of the same name add up)."""
        i = bisect.bisect_left(self.times, us)
        numbers = Counter(self.types[i:])
        numbers.update(self.rules[i:])
        numbers.pop(NO_RULE, None)
        counts: dict[str, int] = {}
        for number, n in numbers.items():
            counts[self.keys[number]] = counts.get(self.keys[number], 0) + n
        return counts

    def as_json(self) -> dict[str, Any]:
        return {
            "keys": self.keys,
            "times": _packed(self.times),
            "types": _packed(self.types),
            "rules": _packed(self.rules),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RecentWindow:
        return cls(
            list(data["keys"]),
            _unpacked("q", data["times"]),
            _unpacked("H", data["types"]),
            _unpacked("H", data["rules"]),
        )


def _packed(values: array[int]) -> str:
    if sys.byteorder == "big":  # stored little-endian, whichever machine stored it
        values = array(values.typecode, values)
        values.byteswap()
    return base64.b64encode(values.tobytes()).decode("ascii")


def _unpacked(typecode: str, text: str) -> array[int]:
    values = array(typecode)
    values.frombytes(base64.b64decode(text))
    if sys.byteorder == "big":
        values.byteswap()
    return values


@dataclass
class FeatureState:
    """Everything `lead_features` takes from a lead's events, folded."""

    events: int = 0
    newest: int | None = None  # microseconds of the newest event
    counts: dict[str, int] = field(default_factory=dict)  # key -> events
    last: dict[str, int] = field(default_factory=dict)  # key -> microseconds of its latest event
    recent: RecentWindow = field(default_factory=lambda: RecentWindow())
    sections: dict[str, int] = field(default_factory=dict)  # page section -> page views
    days: set[int] = field(default_factory=set)  # active days (ordinals) from newest_day - DAYS_KEPT on
    newest_day: int | None = None
    older_days: int = 0  # active days before those kept
    channel: tuple[int, str] | None = None  # (time, raw value) of the earliest event naming one
    exact: bool = True  # False: a late event's day could not be told apart; rebuild

    @property
    def active_days(self) -> int:
        return self.older_days + len(self.days)

    def as_json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "newest": self.newest,
            "counts": self.counts,
            "last": self.last,
            "recent": self.recent.as_json(),
            "sections": self.sections,
            "days": sorted(self.days),
            "newest_day": self.newest_day,
            "older_days": self.older_days,
            "channel": list(self.channel) if self.channel else None,
            "exact": self.exact,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureState:
        channel = data["channel"]
        return cls(
            events=int(data["events"]),
            newest=data["newest"],
            counts={k: int(v) for k, v in data["counts"].items()},
            last={k: int(v) for k, v in data["last"].items()},
            recent=RecentWindow.from_json(data["recent"]),
            sections={k: int(v) for k, v in data["sections"].items()},
            days={int(d) for d in data["days"]},
            newest_day=data["newest_day"],
            older_days=int(data["older_days"]),
            channel=(int(channel[0]), str(channel[1])) if channel else None,
            exact=bool(data["exact"]),
        )


class FeatureStateFolder:
    """One model's rules, prepared once: folds events into feature states."""

    def __init__(self, model: ScoringModel) -> None:
        self.model = model
        self.key = features_key(model)
        self._rule_keys = [named("rule:", rule.id) for rule in model.engagement]

    def fold(self, state: FeatureState, events: Iterable[LeadEvent]) -> FeatureState:
        """The state with these (new) events added, in any order; changes and returns `state`."""
        for event in events:
            self._fold_one(state, event)
        if state.newest is not None:  # times that can no longer be recent go
            state.recent.drop_before(state.newest - RECENT_US)
        return state

    def build(self, events: Iterable[LeadEvent]) -> FeatureState:
        """A state from a lead's whole history (always exact: folded oldest day first)."""
        return self.fold(FeatureState(), sorted(events, key=lambda e: e.occurred_at.date()))

    def _fold_one(self, state: FeatureState, event: LeadEvent) -> None:
        if event.occurred_at.tzinfo is None:
            raise ValueError("event times must be timezone-aware")
        us = micros(event.occurred_at)
        state.events += 1
        state.newest = us if state.newest is None else max(state.newest, us)
        self._fold_day(state, event.occurred_at.date().toordinal())
        rule = first_engagement_rule(self.model.engagement, event)
        rule_key = self._rule_keys[rule] if rule is not None else None
        for key in (event.event_type, rule_key):
            if key is not None:
                state.counts[key] = state.counts.get(key, 0) + 1
                if us > state.last.get(key, us - 1):
                    state.last[key] = us
        if us >= state.newest - RECENT_US:
            state.recent.add(us, event.event_type, rule_key)
        if event.event_type == "page_view" and (section := page_section(event.properties.get("url"))):
            state.sections[section] = state.sections.get(section, 0) + 1
        if (raw := event_channel(event)) is not None and (state.channel is None or (us, raw) < state.channel):
            state.channel = (us, raw)

    @staticmethod
    def _fold_day(state: FeatureState, day: int) -> None:
        if state.newest_day is None or day > state.newest_day:
            state.newest_day = day
            kept_from = day - DAYS_KEPT
            gone = [d for d in state.days if d < kept_from]
            state.older_days += len(gone)
            state.days.difference_update(gone)
            state.days.add(day)
        elif day >= state.newest_day - DAYS_KEPT:
            state.days.add(day)
        else:  # older than the days kept: it may or may not be one counted in older_days
            state.exact = False


def build(model: ScoringModel, events: Iterable[LeadEvent]) -> FeatureState:
    return FeatureStateFolder(model).build(events)


def features_at(
    state: FeatureState,
    *,
    traits: Mapping[str, Any],
    at: datetime,
    rule_score: RuleVerdict,
    account: AccountFacts | None = None,
) -> dict[str, float] | None:
    """What `lead_features` gives over the state's events at `at`; None when the state cannot
    say (`at` before its newest event, or an inexact state)."""
    if at.tzinfo is None:
        raise ValueError("`at` must be timezone-aware")
    at_us = micros(at)
    if not state.exact or (state.newest is not None and state.newest > at_us):
        return None
    features = put_verdict(rule_score, events=state.events)
    put_profile(features, traits, state.channel[1] if state.channel else None)
    for key, count in state.counts.items():
        features[named("count:", key)] = float(count)
    for key, n in state.recent.counts_since(at_us - RECENT_US).items():
        features[named("recent:", key)] = float(n)
    for section, count in state.sections.items():
        features[named("section:", section)] = float(count)
    for key, last in state.last.items():
        prefix = "rule_days_since:" if key.startswith("rule:") else "days_since:"
        features[named(prefix, key.removeprefix("rule:"))] = max(
            0.0, (at - moment(last)).total_seconds() / _SECONDS_PER_DAY
        )
    features["active_days"] = float(state.active_days)
    if account is not None:
        put_account(features, account)
    return features
