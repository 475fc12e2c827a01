"""A lead's cycle: when it becomes an MQL, what sales decisions do to it, where it came from.

Pure rules (services/scoring/lifecycle.py), so no database: a stored lead is a plain value.
"""

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.scoring import lifecycle
from services.scoring.config_files import load_model, parse_model
from services.scoring.domain import LeadEvent, meets_mql_rule, score_lead
from services.scoring.incremental_scorer import first_mql_at, score_timeline
from services.scoring.model import ScoringModel
from shared.event_types import EventType
from shared.events import LeadScored, MqlReached

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DEFAULT_MODEL = load_model(Path(__file__).parents[2] / "config" / "scoring-model.yaml")
MODEL = parse_model(
    dedent(
        """\
        version: lifecycle-test
        grades: {A: 60, B: 40, C: 20}
        fit:
          - {id: title.vp, title: '\\bvp\\b', points: 40}
          - {id: size.mid, company_size: {min: 200, max: 999}, points: 25}
        engagement:
          - {id: demo, event: demo_request, points: 40}
          - {id: pricing, event: page_view, where: {url: {contains: /pricing}}, points: 10, cap: 20}
        decay: {half_life_days: 10}
        undesirables:
          - {id: unsubscribed, event: unsubscribe, disqualify: true}
        mql: {min_score: 50, min_grade: B, cooloff_days: 14}
        """
    ),
    source="lifecycle.yaml",
)
GOOD_FIT = {"title": "VP Marketing", "company_size": 500}


@dataclass(frozen=True)
class Lead:
    """A stored lead as the rules read it."""

    lead_id: str = "lead-1"
    email: str | None = "ana@acme.com"
    stage: str = "nurture"
    cycle: int = 1
    score: int = 0
    grade: str = "D"
    disqualified: str | None = None
    model_version: str | None = None
    mql_at: datetime | None = None
    recycled_at: datetime | None = None


def event(event_type: str, days_ago: float = 0, **properties: Any) -> LeadEvent:
    return LeadEvent(event_type, NOW - timedelta(days=days_ago), properties)


BUYER = [event("page_view", 2, url="/pricing"), event("page_view", 1, url="/pricing"), event("demo_request")]


# --- becoming an MQL ------------------------------------------------------------------------


def test_a_good_fit_lead_in_nurture_whose_score_meets_the_rule_becomes_an_mql():
    rescored = lifecycle.rescore(MODEL, Lead(), GOOD_FIT, BUYER)
    assert rescored.result.score >= 50 and rescored.result.grade == "A"
    assert rescored.qualifies
    assert rescored.stage == "mql" and rescored.mql_at == NOW == rescored.at


def test_the_same_score_does_not_qualify_a_lead_already_with_sales():
    for stage in ("mql", "sal", "sql", "sqo", "disqualified"):
        rescored = lifecycle.rescore(MODEL, Lead(stage=stage), GOOD_FIT, BUYER)
        assert not rescored.qualifies
        assert rescored.stage == stage


def test_a_poor_fit_does_not_qualify_however_engaged():
    rescored = lifecycle.rescore(MODEL, Lead(), {"title": "Intern"}, BUYER)
    assert rescored.result.score >= 50 and rescored.result.grade == "D"
    assert not rescored.qualifies


def test_a_recycled_lead_sits_out_the_cool_off_then_may_qualify_again():
    recently = Lead(cycle=2, recycled_at=NOW - timedelta(days=13))
    long_ago = Lead(cycle=2, recycled_at=NOW - timedelta(days=14))
    assert not lifecycle.rescore(MODEL, recently, GOOD_FIT, BUYER).qualifies
    assert lifecycle.rescore(MODEL, long_ago, GOOD_FIT, BUYER).qualifies


def test_the_score_is_taken_at_the_latest_event_whatever_the_order():
    rescored = lifecycle.rescore(MODEL, Lead(), GOOD_FIT, list(reversed(BUYER)))
    assert rescored.at == NOW
    assert rescored.result == score_lead(MODEL, email="ana@acme.com", traits=GOOD_FIT, events=BUYER, at=NOW)


def test_qualifying_announces_the_score_then_the_mql_with_its_recent_events_and_first_touch():
    history = [
        event("page_view", 3, url="/pricing", utm_medium="cpc", utm_campaign="q4", utm_source="google"),
        event("page_view", 1, url="/pricing", utm_source="newsletter"),
        event("demo_request"),
    ]
    rescored = lifecycle.rescore(MODEL, Lead(), GOOD_FIT, history)
    scored, mql = rescored.events()
    assert isinstance(scored, LeadScored) and scored.stage == "mql"
    assert isinstance(mql, MqlReached)
    assert (mql.channel, mql.campaign, mql.source) == ("cpc", "q4", "google")
    assert [e for e, _ in mql.recent_events] == ["page_view", "page_view", "demo_request"]
    assert mql.cycle == 1 and mql.email == "ana@acme.com" and mql.score == rescored.result.score


def test_an_unchanged_score_announces_nothing():
    first = lifecycle.rescore(MODEL, Lead(stage="sal"), GOOD_FIT, BUYER)
    stored = Lead(
        stage="sal",
        score=first.result.score,
        grade=first.result.grade,
        model_version=MODEL.version,
    )
    again = lifecycle.rescore(MODEL, stored, GOOD_FIT, BUYER)
    assert not again.score_changed and not again.standing_changed
    assert again.events() == []


def test_a_score_history_row_is_due_when_stage_or_model_changes_even_if_the_score_does_not():
    rescored = lifecycle.rescore(MODEL, Lead(), GOOD_FIT, BUYER)
    same_score = Lead(score=rescored.result.score, grade=rescored.result.grade, model_version=MODEL.version)
    assert lifecycle.rescore(MODEL, same_score, GOOD_FIT, BUYER).standing_changed  # nurture -> mql
    older_model = replace(same_score, stage="sal", model_version="older")
    assert lifecycle.rescore(MODEL, older_model, GOOD_FIT, BUYER).standing_changed


def test_an_mql_whose_new_score_no_longer_meets_the_rule_has_stopped_qualifying():
    weak = lifecycle.rescore(MODEL, Lead(stage="mql"), GOOD_FIT, [event("page_view", 1, url="/pricing")])
    strong = lifecycle.rescore(MODEL, Lead(stage="mql"), GOOD_FIT, BUYER)
    assert lifecycle.stopped_qualifying(MODEL, weak)
    assert not lifecycle.stopped_qualifying(MODEL, strong)
    in_nurture = lifecycle.rescore(MODEL, Lead(), GOOD_FIT, BUYER[:1])
    assert not lifecycle.stopped_qualifying(MODEL, in_nurture)  # it was never an MQL


# --- sales decisions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "stage", "outcome"),
    [
        (EventType.SAL_ACCEPTED, "sal", "accepted"),
        (EventType.SQL_QUALIFIED, "sql", None),
        (EventType.SQO_CREATED, "sqo", None),
        (EventType.LEAD_DISQUALIFIED, "disqualified", None),
        (EventType.OPPORTUNITY_WON, "won", None),
        (EventType.OPPORTUNITY_LOST, "lost", None),
    ],
)
def test_a_sales_decision_moves_the_lead_to_its_stage(event_type: str, stage: str, outcome: str | None):
    change = lifecycle.after_sales_decision(event_type, lead_cycle=2, decided_cycle=2, at=NOW)
    assert change is not None
    assert dict(change.values) == {"stage": stage}
    assert change.outcome == outcome


@pytest.mark.parametrize("event_type", [EventType.LEAD_REJECTED, EventType.LEAD_RETURNED])
def test_a_rejection_or_return_recycles_the_lead_to_nurture_for_a_new_cycle(event_type: str):
    change = lifecycle.after_sales_decision(event_type, lead_cycle=2, decided_cycle=2, at=NOW)
    assert change is not None
    assert dict(change.values) == {"stage": "nurture", "cycle": 3, "mql_at": None, "recycled_at": NOW}
    assert change.outcome == "sent_back"


def test_a_decision_about_an_earlier_cycle_changes_nothing_now():
    for event_type in lifecycle.FOLLOWED:
        assert lifecycle.after_sales_decision(event_type, lead_cycle=3, decided_cycle=2, at=NOW) is None


def test_scoring_follows_every_sales_decision_and_nothing_else():
    assert set(lifecycle.FOLLOWED) == {
        EventType.SAL_ACCEPTED,
        EventType.SQL_QUALIFIED,
        EventType.SQO_CREATED,
        EventType.LEAD_DISQUALIFIED,
        EventType.LEAD_REJECTED,
        EventType.LEAD_RETURNED,
        EventType.OPPORTUNITY_WON,
        EventType.OPPORTUNITY_LOST,
        EventType.HANDOFF_REOPENED,
    }


def test_reopening_a_returned_handoff_takes_the_lead_back_from_nurture_to_that_cycle_as_an_mql():
    change = lifecycle.follow(
        EventType.HANDOFF_REOPENED, lead_stage="nurture", lead_cycle=3, decided_cycle=2, at=NOW
    )
    assert change is not None
    assert dict(change.values) == {"stage": "mql", "cycle": 2, "mql_at": NOW, "recycled_at": None}
    assert change.clears_outcome and change.outcome is None


def test_reopening_a_disqualified_handoff_makes_the_lead_an_mql_again_in_the_same_cycle():
    change = lifecycle.follow(
        EventType.HANDOFF_REOPENED, lead_stage="disqualified", lead_cycle=2, decided_cycle=2, at=NOW
    )
    assert change is not None and dict(change.values) == {"stage": "mql"}
    assert change.clears_outcome


@pytest.mark.parametrize(
    ("stage", "cycle"),
    [("mql", 3), ("nurture", 4), ("sal", 2), ("nurture", 2), ("disqualified", 3)],
)
def test_a_reopen_the_lead_has_moved_on_from_changes_nothing(stage: str, cycle: int):
    assert (
        lifecycle.follow(
            EventType.HANDOFF_REOPENED, lead_stage=stage, lead_cycle=cycle, decided_cycle=2, at=NOW
        )
        is None
    )


def test_follow_applies_other_decisions_as_sales_decisions():
    change = lifecycle.follow(
        EventType.OPPORTUNITY_WON, lead_stage="sqo", lead_cycle=2, decided_cycle=2, at=NOW
    )
    assert change is not None and dict(change.values) == {"stage": "won"}


# --- first touch ------------------------------------------------------------------------------


def test_first_touch_takes_each_value_from_the_earliest_event_that_names_it():
    history = [
        event("page_view", 1, utm_medium="email", utm_campaign="late"),
        event("page_view", 5, source="partner"),
        event("page_view", 3, channel="paid", campaign="early"),
    ]
    touch = lifecycle.first_touch(history, {"channel": "referral"})
    assert touch == lifecycle.FirstTouch(channel="paid", campaign="early", source="partner")


def test_without_a_channel_on_any_event_the_traits_name_it():
    touch = lifecycle.first_touch([event("page_view", 1)], {"channel": "referral"})
    assert touch == lifecycle.FirstTouch(channel="referral", campaign=None, source=None)


def test_an_mql_carries_at_most_its_latest_twenty_events_oldest_first():
    history = [event("page_view", days_ago=d) for d in range(30)]
    recent = lifecycle.recent_events(history)
    assert len(recent) == lifecycle.RECENT_EVENTS_CARRIED == 20
    assert [at for _, at in recent] == sorted(e.occurred_at for e in history)[-20:]


# --- one MQL rule: the live path and the backtest's timeline agree ------------------------------

histories = st.lists(
    st.builds(
        event,
        st.sampled_from(["page_view", "page_view", "demo_request", "unsubscribe", "email_open"]),
        st.floats(0, 40, allow_nan=False).map(lambda d: round(d, 1)),
        url=st.sampled_from(["/", "/pricing", "/careers"]),
    ),
    max_size=25,
)
traits = st.sampled_from([{}, GOOD_FIT, {"title": "VP Sales"}, {"title": "student"}, {"company_size": 300}])


@pytest.mark.parametrize("model", [DEFAULT_MODEL, MODEL], ids=["default", "lifecycle"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories, lead_traits=traits)
def test_the_timeline_meets_the_mql_rule_exactly_when_the_live_path_does(
    model: ScoringModel, history: list[LeadEvent], lead_traits: dict[str, Any]
):
    """At every instant, the backtest's verdict equals the live rule applied to the lead's
    events up to then; and its first MQL moment is the first instant the live path qualifies."""
    timeline = score_timeline(model, email="ana@acme.com", traits=lead_traits, events=history)
    live = []
    for point in timeline:
        upto = [e for e in history if e.occurred_at <= point.at]
        rescored = lifecycle.rescore(model, Lead(), lead_traits, upto)
        assert rescored.at == point.at
        assert meets_mql_rule(model, rescored.result) is point.meets_mql
        live.append((point.at, rescored.qualifies))
    first_live = next((at for at, qualified in live if qualified), None)
    assert first_mql_at(model, email="ana@acme.com", traits=lead_traits, events=history) == first_live
