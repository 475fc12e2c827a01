"""A lead's running feature state: what the predictive model's features need, folded in event
by event, so a judged rescore reads no history (`features.lead_features` reads it all).

Pure. Held per key (an event type, or `rule:<id>` of the first engagement rule an event
matches) and per website section:

- counts and the latest time (order-independent: a sum and a maximum);
- the times of the events that can still count as `recent:` for a moment at or after the
  newest event (those from the newest minus RECENT_DAYS on; older ones never will again), so
  the recent window is exact to the microsecond and the state holds 30 days of activity;
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

import bisect
import hashlib
import json
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
class FeatureState:
    """Everything `lead_features` takes from a lead's events, folded."""

    events: int = 0
    newest: int | None = None  # microseconds of the newest event
    counts: dict[str, int] = field(default_factory=dict)  # key -> events
    last: dict[str, int] = field(default_factory=dict)  # key -> microseconds of its latest event
    recent: dict[str, list[int]] = field(default_factory=dict)  # key -> sorted times >= newest - 30 d
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
            "recent": self.recent,
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
            recent={k: [int(t) for t in v] for k, v in data["recent"].items()},
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
            since = state.newest - RECENT_US
            for key in list(state.recent):
                times = state.recent[key]
                if times[0] < since:
                    del times[: bisect.bisect_left(times, since)]
                    if not times:
                        del state.recent[key]
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
        keys = [event.event_type]
        rule = first_engagement_rule(self.model.engagement, event)
        if rule is not None:
            keys.append(self._rule_keys[rule])
        recent = us >= state.newest - RECENT_US
        for key in keys:
            state.counts[key] = state.counts.get(key, 0) + 1
            if us > state.last.get(key, us - 1):
                state.last[key] = us
            if recent:
                bisect.insort(state.recent.setdefault(key, []), us)
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
    recent_from = at_us - RECENT_US
    for key, times in state.recent.items():
        if n := len(times) - bisect.bisect_left(times, recent_from):
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
