"""The score timeline: the score after each instant, equal to score_lead at that instant."""

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from textwrap import dedent
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.scoring import incremental_scorer as scoring_timeline
from services.scoring.config_files import load_model, parse_model
from services.scoring.domain import LeadEvent, ScoringModel, score_lead
from services.scoring.incremental_scorer import TimelinePoint, TimelineScorer, first_mql_at, score_timeline

START = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)  # a midnight: per-day caps see several days
DEFAULT_MODEL = load_model(Path(__file__).parents[2] / "config" / "scoring-model.yaml")

# Decay with a short half-life (events often sit at whole half-lives, where points hit a
# rounding step), total caps, per-day caps, a negative engagement rule and penalties.
CAPPED_MODEL = parse_model(
    dedent(
        """\
        version: capped
        grades: {A: 60, B: 40, C: 20}
        fit:
          - {id: title.vp, title: '\\bvp\\b', points: 25}
          - {id: size.mid, company_size: {min: 200, max: 999}, points: 20}
          - {id: country.core, country: [US], points: 10}
        channel:
          points: {referral: 15, paid: 5, purchased_list: -10}
          aliases: {cpc: paid}
        engagement:
          - {id: pricing, event: page_view, where: {url: {contains: /pricing}}, points: 5, cap: 15,
             cap_per_day: 7}
          - {id: page_view, event: page_view, points: 1, cap: 5, cap_per_day: 2}
          - {id: demo, event: demo_request, points: 30, cap: 30}
          - {id: download, event: content_download, points: 3, cap_per_day: 5}
          - {id: email_open, event: email_open, points: -3, cap: 7, cap_per_day: 4}
        decay: {half_life_days: 0.5}
        undesirables:
          - {id: unsubscribed, event: unsubscribe, disqualify: true}
          - {id: job_seeker, event: page_view, where: {url: {contains: /careers}}, points: -10}
          - {id: free_mail, domain: [gmail.com], points: -20}
          - {id: student, title: student, disqualify: true}
        mql: {min_score: 20, min_grade: C}
        """
    ),
    source="capped.yaml",
)

GOOD_FIT = {"title": "VP Marketing", "company_size": 500, "industry": "Software", "country": "US"}


def at(hours: float) -> datetime:
    return START + timedelta(hours=hours)


def event(event_type: str, hours: float, **properties: Any) -> LeadEvent:
    return LeadEvent(event_type, at(hours), properties)


def rescored(
    model: ScoringModel, email: str | None, traits: Mapping[str, Any], events: Sequence[LeadEvent]
) -> list[tuple[datetime, int, str, str | None]]:
    """What score_lead says at each instant, from every event up to it: the slow way."""
    instants = sorted({e.occurred_at for e in events})
    results = []
    for instant in instants:
        upto = [e for e in events if e.occurred_at <= instant]
        s = score_lead(model, email=email, traits=traits, events=upto, at=instant)
        results.append((instant, s.score, s.grade, s.disqualified))
    return results


def as_tuples(points: Sequence[TimelinePoint]) -> list[tuple[datetime, int, str, str | None]]:
    return [(p.at, p.score, p.grade, p.disqualified) for p in points]


events_strategy = st.lists(
    st.builds(
        event,
        st.sampled_from(
            ["page_view", "page_view", "demo_request", "content_download", "email_open", "unsubscribe"]
        ),
        # Hours over five days; often whole half-lives apart, where points sit on rounding
        # steps (a 5-point view 36 hours old is worth 0.625).
        st.one_of(st.integers(0, 120), st.integers(0, 10).map(lambda k: 12 * k)).map(float),
        url=st.sampled_from(["/", "/pricing", "/careers", "/blog/a"]),
        utm_medium=st.sampled_from(["cpc", "referral", "purchased_list", ""]),
    ),
    max_size=30,
)
traits_strategy = st.sampled_from(
    [{}, GOOD_FIT, {**GOOD_FIT, "channel": "referral"}, {"title": "student"}, {"country": "US"}]
)
emails = st.sampled_from([None, "ana@acme.com", "kim@gmail.com"])


@pytest.mark.parametrize("model", [DEFAULT_MODEL, CAPPED_MODEL], ids=["default", "capped"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=events_strategy, traits=traits_strategy, email=emails)
def test_timeline_equals_score_lead_at_every_instant(
    model: ScoringModel, events: list[LeadEvent], traits: dict[str, Any], email: str | None
):
    timeline = score_timeline(model, email=email, traits=traits, events=events)
    assert as_tuples(timeline) == rescored(model, email, traits, events)


@settings(max_examples=60, deadline=None)
@given(events=events_strategy, traits=traits_strategy, email=emails)
def test_timeline_recomputed_exactly_at_every_step_also_equals_score_lead(
    events: list[LeadEvent], traits: dict[str, Any], email: str | None
):
    # Near a rounding step a rule's running sum is not trusted and its points are recomputed
    # exactly; here every step is "near", so that path is the one checked.
    with patch.object(scoring_timeline, "_TOLERANCE", 1e6):
        points = score_timeline(CAPPED_MODEL, email=email, traits=traits, events=events)
    assert as_tuples(points) == rescored(CAPPED_MODEL, email, traits, events)


@settings(max_examples=60, deadline=None)
@given(events=events_strategy, traits=traits_strategy, data=st.data())
def test_timeline_does_not_depend_on_the_order_of_events(
    events: list[LeadEvent], traits: dict[str, Any], data: st.DataObject
):
    shuffled = data.draw(st.permutations(events))
    expected = score_timeline(CAPPED_MODEL, email=None, traits=traits, events=events)
    assert score_timeline(CAPPED_MODEL, email=None, traits=traits, events=shuffled) == expected


def test_timeline_has_one_point_per_distinct_instant_in_time_order():
    events = [event("page_view", 5, url="/"), event("demo_request", 1), event("page_view", 1, url="/")]
    timeline = score_timeline(DEFAULT_MODEL, email=None, traits={}, events=events)
    assert [p.at for p in timeline] == [at(1), at(5)]


def test_timeline_point_meets_mql_when_score_grade_and_no_disqualifier_allow():
    events = [event("page_view", 0, url="/pricing"), event("demo_request", 1), event("unsubscribe", 2)]
    timeline = score_timeline(CAPPED_MODEL, email=None, traits=GOOD_FIT, events=events)
    assert [p.meets_mql for p in timeline] == [False, True, False]
    assert timeline[2].disqualified == "undesirable.unsubscribed: unsubscribe tracked"


def test_long_history_equals_score_lead_and_stays_fast():
    # Two years of daily-capped page views: weights are rescaled many times (0.5-day half-life).
    views = [event("page_view", hours=h * 7.3, url="/pricing" if h % 3 else "/blog") for h in range(2_400)]
    timeline = score_timeline(CAPPED_MODEL, email=None, traits=GOOD_FIT, events=views)
    assert len(timeline) == len(views)
    for k in range(0, len(views), 97):
        expected = score_lead(
            CAPPED_MODEL, email=None, traits=GOOD_FIT, events=views[: k + 1], at=views[k].occurred_at
        )
        assert timeline[k].score == expected.score


def test_timeline_of_no_events_is_empty():
    assert score_timeline(DEFAULT_MODEL, email=None, traits=GOOD_FIT, events=[]) == []


def test_timeline_needs_timezone_aware_event_times():
    naive = LeadEvent("page_view", datetime(2026, 1, 1), {"url": "/"})
    with pytest.raises(ValueError, match="timezone-aware"):
        score_timeline(DEFAULT_MODEL, email=None, traits={}, events=[naive])


# --- first_mql_at ---------------------------------------------------------------------------------


def test_first_mql_at_is_the_first_instant_that_meets_the_rule():
    events = [
        event("page_view", 0, url="/pricing"),
        event("content_download", 2),
        event("demo_request", 3),
        event("demo_request", 4),
    ]
    assert first_mql_at(CAPPED_MODEL, email=None, traits=GOOD_FIT, events=events) == at(3)


def test_first_mql_at_is_none_for_a_lead_that_never_qualifies():
    events = [event("demo_request", 0), event("page_view", 1, url="/pricing")]
    student = {**GOOD_FIT, "title": "student"}
    assert first_mql_at(CAPPED_MODEL, email=None, traits=student, events=events) is None
    assert first_mql_at(CAPPED_MODEL, email=None, traits={}, events=events) is None  # grade D


def test_first_mql_at_is_none_once_a_disqualifying_event_came_first():
    events = [event("unsubscribe", 0), event("demo_request", 1)]
    assert first_mql_at(CAPPED_MODEL, email=None, traits=GOOD_FIT, events=events) is None


@pytest.mark.parametrize("model", [DEFAULT_MODEL, CAPPED_MODEL], ids=["default", "capped"])
@settings(max_examples=80, deadline=None)
@given(events=events_strategy, traits=traits_strategy, email=emails)
def test_first_mql_at_is_the_first_timeline_point_that_meets_the_rule(
    model: ScoringModel, events: list[LeadEvent], traits: dict[str, Any], email: str | None
):
    # first_mql_at skips the instants whose score is surely too low; that must change nothing.
    timeline = score_timeline(model, email=email, traits=traits, events=events)
    expected = next((p.at for p in timeline if p.meets_mql), None)
    assert first_mql_at(model, email=email, traits=traits, events=events) == expected


def test_scorers_of_models_differing_only_in_engagement_share_profiles():
    lower = CAPPED_MODEL.model_copy(update={"mql": CAPPED_MODEL.mql.model_copy(update={"min_score": 5})})
    assert TimelineScorer(CAPPED_MODEL).reads_profiles_like(TimelineScorer(lower))
    assert not TimelineScorer(CAPPED_MODEL).reads_profiles_like(TimelineScorer(DEFAULT_MODEL))


# --- at_moments: the score at any moment, as training and recommend take it -----------------------

moments_strategy = st.lists(
    st.one_of(st.integers(-12, 160), st.integers(0, 12).map(lambda k: 12 * k)).map(lambda h: at(float(h))),
    min_size=1,
    max_size=6,
)


@pytest.mark.parametrize("model", [DEFAULT_MODEL, CAPPED_MODEL], ids=["default", "capped"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=events_strategy, traits=traits_strategy, email=emails, moments=moments_strategy)
def test_the_score_at_any_moment_equals_score_lead_of_the_events_up_to_it(
    model: ScoringModel,
    events: list[LeadEvent],
    traits: dict[str, Any],
    email: str | None,
    moments: list[datetime],
):
    # Moments fall before, between, on and after events, repeat and come in any order.
    scored = TimelineScorer(model).at_moments(email=email, traits=traits, events=events, moments=moments)
    assert [s.at for s in scored] == moments
    for moment, s in zip(moments, scored, strict=True):
        upto = [e for e in events if e.occurred_at <= moment]
        full = score_lead(model, email=email, traits=traits, events=upto, at=moment)
        assert (s.score, s.fit_points, s.grade, s.fit_rules, s.disqualified) == (
            full.score,
            full.fit_points,
            full.grade,
            full.fit_rules,
            full.disqualified,
        )
        assert s.meets_mql == model.mql.is_met(
            score=full.score, grade=full.grade, disqualified=full.disqualified
        )


@settings(max_examples=60, deadline=None)
@given(events=events_strategy, traits=traits_strategy, email=emails)
def test_the_score_at_each_instant_is_the_timeline_point_the_backtest_replays(
    events: list[LeadEvent], traits: dict[str, Any], email: str | None
):
    timeline = score_timeline(CAPPED_MODEL, email=email, traits=traits, events=events)
    instants = [p.at for p in timeline]
    scored = TimelineScorer(CAPPED_MODEL).at_moments(
        email=email, traits=traits, events=events, moments=instants
    )
    assert [(s.at, s.score, s.grade, s.disqualified, s.meets_mql) for s in scored] == [
        (p.at, p.score, p.grade, p.disqualified, p.meets_mql) for p in timeline
    ]


def test_moments_need_timezone_aware_times():
    with pytest.raises(ValueError, match="timezone-aware"):
        TimelineScorer(DEFAULT_MODEL).at_moments(
            email=None, traits={}, events=[], moments=[datetime(2026, 1, 1)]
        )
