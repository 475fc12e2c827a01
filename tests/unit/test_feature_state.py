"""A lead's running feature state gives exactly what the model's features over its whole history
(`lead_features`) give, at any moment from its newest event on: what live scoring asks.

Events come in batches, in any order (late, out-of-order and same-moment events included), a
redelivered event is folded once (the store takes it as new only once), and the state goes
through its stored JSON form between batches, as it does between consumer batches.
"""

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.scoring.config_files import load_model
from services.scoring.domain import LeadEvent
from services.scoring.feature_state import (
    DAYS_KEPT,
    RECENT_US,
    FeatureState,
    FeatureStateFolder,
    features_at,
    features_key,
)
from services.scoring.features import AccountFacts, lead_features
from services.scoring.score_state import micros

START = datetime(2026, 6, 1, tzinfo=UTC)
MODEL = load_model(Path(__file__).parents[2] / "config" / "scoring-model.yaml")
FOLDER = FeatureStateFolder(MODEL)


@dataclass(frozen=True)
class Verdict:
    score: int = 42
    fit_points: int = 25
    fit_rules: tuple[str, ...] = ("title.vp",)


def event(event_type: str, seconds: int, **properties: Any) -> LeadEvent:
    return LeadEvent(event_type, START + timedelta(seconds=seconds), properties)


DAY = 86_400
moments = st.one_of(
    st.integers(0, 200 * DAY),  # anywhere over 200 days
    st.integers(0, 8).map(lambda k: 30 * DAY * k // 2),  # on the edges of the 30-day window
    st.integers(0, 200).map(lambda d: d * DAY - 1),  # a second before midnight
)
properties = st.fixed_dictionaries(
    {},
    optional={
        "url": st.sampled_from(["/", "/pricing", "/pricing/teams", "/integrations/crm", "/blog/a", 7]),
        "channel": st.sampled_from(["paid", "Referral", "  ", "", 3, None]),
        "utm_medium": st.sampled_from(["cpc", "email", ""]),
    },
)
events_strategy = st.lists(
    st.builds(
        lambda kind, seconds, props: event(kind, seconds, **props),
        st.sampled_from(["page_view", "page_view", "demo_request", "email_open", "form_submit", "custom"]),
        moments,
        properties,
    ),
    max_size=40,
)
traits_strategy = st.sampled_from(
    [{}, {"industry": "Software", "company_size": 500}, {"channel": "referral", "country": "DE"}]
)
accounts = st.sampled_from([None, AccountFacts("enterprise", 70, "A", 3, "domain")])


def fold_in_batches(events: list[LeadEvent], rng: random.Random) -> FeatureState:
    """As the consumer does: batches in arrival order, the store taking each event (id) once,
    the state stored as JSON between batches and rebuilt from the history when inexact."""
    arrivals = [(i, e) for i, e in enumerate(events)]
    arrivals += [arrivals[rng.randrange(len(arrivals))] for _ in range(rng.randrange(3))] if arrivals else []
    rng.shuffle(arrivals)
    stored: dict[int, LeadEvent] = {}
    state = FeatureState()
    while arrivals:
        size = rng.randint(1, 6)
        batch, arrivals = arrivals[:size], arrivals[size:]
        new = []
        for event_id, e in batch:
            if event_id not in stored:  # a redelivery is not new: not folded again
                stored[event_id] = e
                new.append(e)
        state = FeatureState.from_json(json.loads(json.dumps(FOLDER.fold(state, new).as_json())))
        if not state.exact:
            state = FOLDER.build(stored.values())
            assert state.exact
    return state


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=events_strategy,
    traits=traits_strategy,
    account=accounts,
    later_s=st.one_of(st.just(0), st.integers(0, 40 * DAY), st.just(30 * DAY)),
    seed=st.integers(0, 2**32),
)
def test_the_folded_state_gives_the_features_of_the_whole_history(
    events: list[LeadEvent], traits: dict[str, Any], account: AccountFacts | None, later_s: int, seed: int
) -> None:
    state = fold_in_batches(events, random.Random(seed))
    newest = max((e.occurred_at for e in events), default=START)
    at = newest + timedelta(seconds=later_s)
    expected = lead_features(
        MODEL, traits=traits, events=events, at=at, rule_score=Verdict(), account=account
    )
    assert features_at(state, traits=traits, at=at, rule_score=Verdict(), account=account) == expected


@settings(max_examples=100, deadline=None)
@given(events=events_strategy, seed=st.integers(0, 2**32))
def test_the_state_stays_bounded_by_its_windows(events: list[LeadEvent], seed: int) -> None:
    state = fold_in_batches(events, random.Random(seed))
    if state.newest is None:
        return
    assert all(t >= state.newest - RECENT_US for t in state.recent.times)
    assert len(state.days) <= DAYS_KEPT + 1
    assert state.events == len(events)


def test_a_state_built_from_the_history_is_exact_however_late_events_came() -> None:
    late = [event("page_view", 200 * DAY), event("page_view", 0), event("demo_request", 5 * DAY)]
    folded = FOLDER.fold(FeatureState(), late)
    assert not folded.exact  # the 200-day-late day could not be told from those forgotten
    assert features_at(folded, traits={}, at=late[0].occurred_at, rule_score=Verdict()) is None
    built = FOLDER.build(late)
    assert built.exact and built.active_days == 3


def test_a_moment_before_the_newest_event_is_not_answered_from_the_state() -> None:
    state = FOLDER.build([event("page_view", DAY)])
    assert features_at(state, traits={}, at=START, rule_score=Verdict()) is None
    assert micros(START) < (state.newest or 0)


def test_the_key_changes_with_the_engagement_rules_only() -> None:
    renamed = MODEL.model_copy(
        update={
            "engagement": (MODEL.engagement[0].model_copy(update={"id": "renamed"}), *MODEL.engagement[1:])
        }
    )
    assert features_key(renamed) != features_key(MODEL)
    assert features_key(MODEL.model_copy(update={"version": "other"})) == features_key(MODEL)
