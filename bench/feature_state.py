"""feature state: what a judged rescore pays for the predictive model's features, by the
length of the lead's history, in one process (no services): the features from the lead's
running feature state (its stored JSON decoded, the new event folded in, the features read,
the state encoded again) beside the same features from the whole history
(`features.lead_features`, what the hook computed before, without the history's read from
Postgres, which came on top), and the ceiling: the state's JSON round trip alone.

`python -m bench --only feature_state` (seconds; CPU per lead, deterministic enough on a
shared machine). Each lead has 30 events in the last 30 days and the rest of its history
before, so the history grows and the activity does not; a last row has 1,000 events in the
last 30 days (the window the state must hold exactly).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from services.scoring.config_files import load_model
from services.scoring.domain import LeadEvent, score_lead
from services.scoring.feature_state import FeatureState, FeatureStateFolder, features_at
from services.scoring.features import lead_features
from shared.settings import Settings

HISTORIES = ((30, 30), (300, 30), (3_000, 30), (10_000, 30), (1_000, 1_000))  # (events, in the last 30 days)
TRAITS = {"industry": "Software", "company_size": 500, "country": "US", "title": "VP Marketing"}
_KINDS = (
    ("page_view", "/pricing"),
    ("page_view", "/blog/a"),
    ("page_view", "/integrations/crm"),
    ("email_open", None),
    ("email_click", None),
    ("content_download", None),
)


@dataclass(frozen=True)
class FeatureCost:
    events: int
    recent: int
    state_bytes: int
    history_us: float  # lead_features over the whole history
    state_us: float  # decode, fold the new event, features_at, encode
    round_trip_us: float  # the ceiling: decode and encode the state alone


def history(events: int, recent: int, now: datetime, rng: random.Random) -> list[LeadEvent]:
    def one(at: datetime) -> LeadEvent:
        kind, path = rng.choice(_KINDS)
        return LeadEvent(kind, at, {"url": f"https://leadflow.example{path}"} if path else {})

    old = [one(now - timedelta(days=31 + rng.random() * 700)) for _ in range(events - recent)]
    new = [one(now - timedelta(seconds=rng.randrange(1, 30 * 86_400))) for _ in range(recent)]
    return sorted(old + new, key=lambda e: e.occurred_at)


def feature_costs(settings: Settings | None = None) -> list[FeatureCost]:
    model = load_model((settings or Settings()).config_file("scoring-model.yaml"))
    folder, rng, now = FeatureStateFolder(model), random.Random(16), datetime.now(UTC)
    costs = []
    for events, recent in HISTORIES:
        past = history(events, recent, now, rng)
        new = LeadEvent("page_view", now, {"url": "https://leadflow.example/pricing"})
        whole = [*past, new]
        verdict = score_lead(model, email=None, traits=TRAITS, events=whole, at=now)
        stored = orjson.dumps(folder.build(past).as_json())
        reps = max(20, 30_000 // events)
        started = time.process_time()
        for _ in range(reps):
            expected = lead_features(model, traits=TRAITS, events=whole, at=now, rule_score=verdict)
        from_history = time.process_time()
        for _ in range(reps):
            state = folder.fold(FeatureState.from_json(orjson.loads(stored)), [new])
            found = features_at(state, traits=TRAITS, at=now, rule_score=verdict)
            orjson.dumps(state.as_json())
        from_state = time.process_time()
        for _ in range(reps):
            orjson.dumps(FeatureState.from_json(orjson.loads(stored)).as_json())
        ended = time.process_time()
        assert found == expected, "the state's features are the history's"
        costs.append(
            FeatureCost(
                events + 1,
                recent + 1,
                len(stored),
                (from_history - started) / reps * 1e6,
                (from_state - from_history) / reps * 1e6,
                (ended - from_state) / reps * 1e6,
            )
        )
    return costs


def feature_cost_report(costs: list[FeatureCost]) -> str:
    lines = [
        "| lead's history: events (in the last 30 days) | state (JSON) | features from the history "
        "| from the state | ceiling: state JSON round trip |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for c in costs:
        lines.append(
            f"| {c.events:,} ({c.recent:,}) | {c.state_bytes / 1024:.1f} KiB | {c.history_us:,.0f} µs "
            f"| {c.state_us:,.0f} µs | {c.round_trip_us:,.0f} µs |"
        )
    return "\n".join(lines)
