"""Decay moments: a lead's score is looked at again exactly when decay could have changed it in a
way that matters (the MQL threshold crossed, or MEANINGFUL_CHANGE points), never later."""

import math
from datetime import UTC, datetime, timedelta
from textwrap import dedent
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.scoring.config_files import parse_model
from services.scoring.decay_moments import MEANINGFUL_CHANGE, early_look, meaningful, next_look
from services.scoring.domain import LeadEvent, score_lead
from services.scoring.score_state import LeadState, LeadStateScorer

START = datetime(2026, 6, 1, 9, tzinfo=UTC)
MODEL = parse_model(
    dedent(
        """\
        version: decaying
        grades: {A: 60, B: 40, C: 20}
        engagement:
          - {id: demo, event: demo_request, points: 40, cap: 40, half_life_days: 10}
          - {id: pricing, event: page_view, where: {url: {contains: /pricing}}, points: 5, cap: 15,
             cap_per_day: 10}
          - {id: bounce, event: email_open, points: -20, cap: 20, half_life_days: 2}
          - {id: webinar, event: webinar_attended, points: 15}
        decay: {half_life_days: 30}
        mql: {min_score: 30, min_grade: D}
        """
    ),
    source="decaying.yaml",
)
NO_DECAY = MODEL.model_copy(update={"decay": None, "engagement": MODEL.engagement[3:]})
SCORER = LeadStateScorer(MODEL)


def event(kind: str, days: float, **properties: Any) -> LeadEvent:
    return LeadEvent(kind, START + timedelta(days=days), properties)


def score_at(events: list[LeadEvent], at: datetime, model=MODEL) -> int:  # type: ignore[no-untyped-def]
    return score_lead(model, email=None, traits={}, events=events, at=at).score


def look(events: list[LeadEvent], scorer: LeadStateScorer = SCORER) -> tuple[datetime, int, datetime | None]:
    at = max(e.occurred_at for e in events)
    state = scorer.fold(LeadState(), events)
    result = score_lead(scorer.model, email=None, traits={}, events=events, at=at)
    return at, result.score, next_look(scorer, state, result, at=at)


def test_one_demo_request_is_looked_at_when_it_has_lost_five_points():
    events = [event("demo_request", 0)]
    _, score, due = look(events)
    assert score == 40 and due is not None
    # The rule's points are rounded to cents first: 40 x 2^(-d/10) below 35.495 shows 35.49, a 35
    expected = START + timedelta(days=10 * math.log2(40 / 35.495))
    assert abs((due - expected).total_seconds()) <= 2
    assert score_at(events, due) == 40 - MEANINGFUL_CHANGE
    assert score_at(events, due - timedelta(seconds=2)) == 36


def test_a_lead_above_the_threshold_is_looked_at_when_it_falls_below_it():
    events = [event("demo_request", 0), event("page_view", 0, url="/pricing")]  # 45, threshold 30
    _, score, first = look(events)
    assert score == 45 and first is not None
    # the next looks, one after the other, until it is below the threshold
    due, seen = first, [45]
    while due is not None and seen[-1] >= 30:
        seen.append(score_at(events, due))
        state = SCORER.fold(LeadState(), events)
        due = next_look(
            SCORER, state, score_lead(MODEL, email=None, traits={}, events=events, at=due), at=due
        )
    assert seen == [45, 40, 35, 30, 29]  # five points each, then 30 -> 29: below the threshold


def test_a_fading_penalty_lets_the_score_rise_and_is_looked_at_when_it_has_risen_five_points():
    only_rules_decay = LeadStateScorer(MODEL.model_copy(update={"decay": None}))  # webinars keep
    events = [event("webinar_attended", 0), event("webinar_attended", 0), event("email_open", 0)]
    _, score, due = look(events, only_rules_decay)
    assert score == 10 and due is not None  # 30 - 20
    assert score_at(events, due, only_rules_decay.model) == 15
    assert score_at(events, due - timedelta(seconds=2), only_rules_decay.model) == 14


def test_when_points_fade_both_ways_the_look_comes_early_rather_than_late():
    events = [event("webinar_attended", 0), event("webinar_attended", 0), event("email_open", 0)]
    _, score, due = look(events)  # the webinars fade too, so the penalty's fading alone bounds it
    assert score == 10 and due is not None
    assert 10 <= score_at(events, due) < 15


def test_a_score_of_cents_ending_in_half_a_point_reads_the_same_however_it_is_summed():
    # 39.73 - 20.00 + 9.77 is 29.50 in cents, 29.499999999999996 as floats summed in one order:
    # the score and the look's bounds must both read 30, or the look comes after the drop to 29
    events = [
        event("webinar_attended", 1),
        event("demo_request", 2.75),
        event("email_open", 8),
        event("demo_request", 14),
        event("email_open", 19.5),
    ]
    _, score, due = look(events)
    assert score == 30 and due is not None
    assert score_at(events, due - timedelta(seconds=2)) == 30
    assert score_at(events, due) == 29


def test_a_score_that_does_not_decay_is_never_looked_at_again():
    events = [event("webinar_attended", 0)]
    assert look(events, LeadStateScorer(NO_DECAY))[2] is None


def test_meaningful_is_a_threshold_crossing_or_a_big_enough_move():
    assert meaningful(50, 50, 49) and meaningful(50, 49, 50)
    assert meaningful(50, 80, 75) and not meaningful(50, 80, 76)


histories = st.lists(
    st.builds(
        event,
        st.sampled_from(["demo_request", "page_view", "email_open", "webinar_attended"]),
        st.floats(0, 20, allow_nan=False),
        url=st.sampled_from(["/pricing", "/"]),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(events=histories, fractions=st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=5))
def test_nothing_meaningful_happens_before_the_moment_and_something_may_at_it(
    events: list[LeadEvent], fractions: list[float]
):
    at, score, due = look(events)
    if due is None:  # nothing decays, or not within the horizon: it stays meaningless forever
        for days in (1, 100, 1000):
            assert not meaningful(30, score, score_at(events, at + timedelta(days=days)))
        return
    assert due > at
    for fraction in fractions:  # before the moment, no change that matters
        before = at + (due - at - timedelta(seconds=1)) * fraction
        assert not meaningful(30, score, score_at(events, before))


@settings(max_examples=150, deadline=None)
@given(events=histories)
def test_the_early_look_comes_no_later_than_the_exact_one_and_never_misses_it(events: list[LeadEvent]):
    at, score, due = look(events)
    state = SCORER.fold(LeadState(), events)
    early = early_look(SCORER, state, score_lead(MODEL, email=None, traits={}, events=events, at=at), at=at)
    if due is None:
        return  # the early look may still come: the decay loop then finds nothing to do
    assert early is not None and at < early <= due
    assert not meaningful(30, score, score_at(events, early - timedelta(seconds=1)))


def test_a_long_history_is_looked_at_early_in_a_few_steps_and_exactly_by_the_decay_loop():
    # 60 days of pricing views, three a day: each day capped at 10, the rule at 15 in all
    views = [(day, hour) for day in range(60) for hour in (9, 12, 15)]
    events = [event("page_view", day + hour / 24, url="/pricing") for day, hour in views]
    events.append(event("demo_request", 60))
    at, score, due = look(events)
    state = SCORER.fold(LeadState(), events)
    result = score_lead(MODEL, email=None, traits={}, events=events, at=at)
    early = early_look(SCORER, state, result, at=at)
    assert score == 55 and due is not None and early is not None
    # the bound halves every rule at the fastest half-life (10 days): it needs 55 -> 50 in all
    assert at + timedelta(days=1) < early < due
    assert score_at(events, early) > 50  # nothing meaningful yet: the loop then plans `due`
