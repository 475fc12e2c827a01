"""A lead's running score state gives exactly what the full recompute (score_lead) gives.

Events come in batches, in any order (late and out-of-order events included), and the state
goes through its stored JSON form between batches, as it does between consumer batches.
"""

import dataclasses
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.scoring import score_state
from services.scoring.config_files import load_model, parse_model
from services.scoring.domain import LeadEvent, LeadScore, ScoringModel, score_lead
from services.scoring.score_state import LeadState, LeadStateScorer, model_key

START = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
DEFAULT_MODEL = load_model(Path(__file__).parents[2] / "config" / "scoring-model.yaml")
# Short half-lives (events often sit at whole half-lives, where points hit a rounding step), a
# rule with its own half-life, one that never decays... and caps, per-day caps, a negative rule.
CAPPED_MODEL = parse_model(
    dedent(
        """\
        version: capped
        grades: {A: 60, B: 40, C: 20}
        fit:
          - {id: title.vp, title: '\\bvp\\b', points: 25}
          - {id: size.mid, company_size: {min: 200, max: 999}, points: 20}
        channel:
          points: {referral: 15, paid: 5, purchased_list: -10}
          aliases: {cpc: paid}
        engagement:
          - {id: pricing, event: page_view, where: {url: {contains: /pricing}}, points: 5, cap: 15,
             cap_per_day: 7}
          - {id: page_view, event: page_view, points: 1, cap: 5, cap_per_day: 2, half_life_days: 2}
          - {id: demo, event: demo_request, points: 30, cap: 30, half_life_days: 3}
          - {id: download, event: content_download, points: 3, cap_per_day: 5}
          - {id: email_open, event: email_open, points: -3, cap: 7, cap_per_day: 4}
        decay: {half_life_days: 0.5}
        undesirables:
          - {id: unsubscribed, event: unsubscribe, disqualify: true}
          - {id: job_seeker, event: page_view, where: {url: {contains: /careers}}, points: -10}
          - {id: free_mail, domain: [gmail.com], points: -20}
        mql: {min_score: 20, min_grade: C}
        """
    ),
    source="capped.yaml",
)
GOOD_FIT = {"title": "VP Marketing", "company_size": 500, "industry": "Software", "country": "US"}


def event(event_type: str, hours: float, **properties: Any) -> LeadEvent:
    return LeadEvent(event_type, START + timedelta(hours=hours), properties)


events_strategy = st.lists(
    st.builds(
        event,
        st.sampled_from(
            ["page_view", "page_view", "demo_request", "content_download", "email_open", "unsubscribe"]
        ),
        # Hours over five days, often at whole half-lives; and odd seconds in between.
        st.one_of(
            st.integers(0, 120).map(float),
            st.integers(0, 10).map(lambda k: 12.0 * k),
            st.integers(0, 432_000).map(lambda s: s / 3600),
        ),
        url=st.sampled_from(["/", "/pricing", "/careers", "/blog/a"]),
        utm_medium=st.sampled_from(["cpc", "referral", "purchased_list", ""]),
        utm_campaign=st.sampled_from(["", "spring", "autumn"]),
    ),
    max_size=30,
)
traits_strategy = st.sampled_from([{}, GOOD_FIT, {**GOOD_FIT, "channel": "referral"}, {"country": "US"}])
emails = st.sampled_from([None, "ana@acme.com", "kim@gmail.com"])


def stored(state: LeadState) -> LeadState:
    """The state after a trip through its JSONB column."""
    return LeadState.from_json(json.loads(json.dumps(state.as_json())))


def score_or_recompute(
    scorer: LeadStateScorer,
    state: LeadState,
    history: list[LeadEvent],
    email: str | None,
    traits: Any,
    at: datetime,
) -> tuple[LeadScore, bool]:
    """What the handler does: the state's score, or the full recompute when the state is unsure."""
    found = scorer.score(state, email=email, traits=traits, at=at)
    if found is not None:
        return found, False
    return score_lead(scorer.model, email=email, traits=traits, events=history, at=at), True


@pytest.mark.parametrize("model", [DEFAULT_MODEL, CAPPED_MODEL], ids=["default", "capped"])
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=events_strategy, traits=traits_strategy, email=emails, data=st.data())
def test_state_scores_equal_the_full_recompute_batch_after_batch_in_any_order(
    model: ScoringModel,
    events: list[LeadEvent],
    traits: dict[str, Any],
    email: str | None,
    data: st.DataObject,
):
    arriving = data.draw(st.permutations(events))  # late and out-of-order events included
    # A replay: some events arrive twice under new ids (the same body; the store keeps both).
    arriving += data.draw(st.lists(st.sampled_from(events), max_size=3)) if events else []
    cuts = sorted(data.draw(st.lists(st.integers(0, len(arriving)), max_size=4)))
    scorer, state, seen = LeadStateScorer(model), LeadState(), []
    for start, end in zip([0, *cuts], [*cuts, len(arriving)], strict=True):
        batch = arriving[start:end]
        if not batch:
            continue
        state = stored(scorer.fold(state, batch))
        seen += batch
        at = max(e.occurred_at for e in seen)
        expected = score_lead(model, email=email, traits=traits, events=seen, at=at)
        found = scorer.score(state, email=email, traits=traits, at=at)
        assert found is None or found == expected
        # ... and later, as time passes with no new event.
        later = at + timedelta(hours=data.draw(st.integers(0, 400)))
        found = scorer.score(state, email=email, traits=traits, at=later)
        assert found is None or found == score_lead(model, email=email, traits=traits, events=seen, at=later)
    assert state.events == len(seen)


def test_state_is_unsure_only_rarely_on_real_looking_histories():
    rng = random.Random(16)
    scorer = LeadStateScorer(DEFAULT_MODEL)
    unsure = scores = 0
    for _ in range(200):
        history = [
            event(
                rng.choice(["page_view", "page_view", "email_open", "email_click", "content_download"]),
                rng.uniform(0, 24 * 200),
                url=rng.choice(["/", "/pricing", "/product", "/blog/a"]),
            )
            for _ in range(rng.randint(1, 60))
        ]
        state = scorer.fold(LeadState(), history)
        at = max(e.occurred_at for e in history) + timedelta(days=rng.uniform(0, 30))
        found, recomputed = score_or_recompute(scorer, state, history, None, GOOD_FIT, at)
        assert found == score_lead(DEFAULT_MODEL, email=None, traits=GOOD_FIT, events=history, at=at)
        unsure += recomputed
        scores += 1
    assert unsure <= scores // 50


def test_long_history_folds_one_event_at_a_time_and_matches_the_full_recompute():
    rng = random.Random(7)
    scorer = LeadStateScorer(DEFAULT_MODEL)
    history = [
        event(
            rng.choice(["page_view", "email_open", "content_download"]),
            rng.uniform(0, 24 * 365),
            url="/pricing",
        )
        for _ in range(3_000)
    ]
    state = LeadState()
    for e in history:  # a lead's events one batch each: the state never sees the history
        state = scorer.fold(state, [e])
    at = max(e.occurred_at for e in history)
    found, _ = score_or_recompute(scorer, state, history, None, {}, at)
    assert found == score_lead(DEFAULT_MODEL, email=None, traits={}, events=history, at=at)


def long_capped_state() -> LeadState:
    rng = random.Random(11)
    scorer = LeadStateScorer(CAPPED_MODEL)
    history = [event("page_view", rng.uniform(0, 24 * 80), url="/pricing") for _ in range(200)]
    state = scorer.fold(LeadState(), history)
    assert any(t.days for t in state.tallies.values())  # a rule capped per day keeps its days
    return state


def test_states_of_another_format_are_rebuilt_not_read(monkeypatch: pytest.MonkeyPatch):
    """The format is part of the model key: a release that stored the days as lists (format 1)
    and this one rebuild each other's states from the history during a rolling update."""
    current = model_key(DEFAULT_MODEL)
    monkeypatch.setattr(score_state, "_STATE_FORMAT", 1)
    assert model_key(DEFAULT_MODEL) != current


def test_a_read_state_s_day_profiles_are_the_ones_its_days_give():
    """Stored lightest first, the days' weights are read as the profile, without a sort."""
    for i, tally in stored(long_capped_state()).tallies.items():
        assert tally.day_profile() == dataclasses.replace(tally).day_profile(), i


def test_events_after_the_scoring_time_leave_the_state_unsure():
    scorer = LeadStateScorer(DEFAULT_MODEL)
    state = scorer.fold(LeadState(), [event("demo_request", 48)])
    assert scorer.score(state, email=None, traits={}, at=START) is None


def test_first_touch_and_recent_events_come_from_the_earliest_and_latest_events():
    scorer = LeadStateScorer(DEFAULT_MODEL)
    late = [event("page_view", float(h), url="/") for h in range(30, 5, -1)]
    first = event("page_view", 1, utm_medium="cpc", utm_campaign="spring", utm_source="google")
    state = stored(scorer.fold(LeadState(), [*late, first]))
    assert state.first_touch_values() == ("cpc", "spring", "google")
    recent = state.recent_events()
    assert len(recent) == 20 and recent[-1][1] == START + timedelta(hours=30)
    assert [t for _, t in recent] == sorted(t for _, t in recent)


def test_a_changed_engagement_rule_or_half_life_changes_the_model_key():
    longer = DEFAULT_MODEL.model_copy(
        update={"decay": DEFAULT_MODEL.decay.model_copy(update={"half_life_days": 90.0})}
    )
    other_version = DEFAULT_MODEL.model_copy(update={"version": "next"})
    assert model_key(longer) != model_key(DEFAULT_MODEL)
    assert model_key(other_version) == model_key(DEFAULT_MODEL)  # thresholds and fit are read when scoring
