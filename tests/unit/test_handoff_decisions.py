"""A handoff deciding: the transition, the SAL clock, whether it came in time, the event.
Who sees which handoff. What makes two requests the same for Idempotency-Key.

All pure (services/handoff/domain.py, visibility.py, idempotency.fingerprint): no database.
"""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.handoff import idempotency, sla
from services.handoff.config_files import load_routing_config, load_sla_config
from services.handoff.domain import (
    Action,
    Decision,
    Handoff,
    HandoffConfig,
    InvalidTransition,
    ReasonRequired,
    Stage,
    StaleVersion,
    UnknownOwner,
)
from services.handoff.visibility import Viewer, can_see, visible_owners
from shared.events import HandoffReassigned, LeadRejected, SalAccepted, SqlQualified, SqoCreated

CONFIG_DIR = Path(__file__).parents[2] / "config"
SLA = load_sla_config(CONFIG_DIR / "sla.yaml")
CONFIG = HandoffConfig(
    sla=SLA,
    routing=load_routing_config(CONFIG_DIR / "routing.yaml", calendars=[c.name for c in SLA.calendars]),
)
MONDAY_10_BERLIN = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

MQL = Handoff(
    handoff_id="h-1",
    lead_id="lead-1",
    cycle=2,
    stage=Stage.MQL,
    owner="lena.hoffmann",
    team="emea-sales",
    policy="standard",
    decide_by=MONDAY_10_BERLIN + timedelta(hours=8),
    qualify_by=None,
    channel="paid",
    campaign="q1",
    version=3,
)


def accept(by: str = "lena.hoffmann") -> Decision:
    return Decision(Action.ACCEPT, actor=by)


def test_accepting_an_mql_makes_it_a_sal_and_starts_the_sal_clock_in_business_time():
    decided = MQL.decide(accept(), CONFIG, now=MONDAY_10_BERLIN)
    t = decided.transition
    assert (t.from_stage, t.to_stage, t.action, t.actor) == ("mql", "sal", "accept", "lena.hoffmann")
    policy, calendar = CONFIG.policy_named("standard"), CONFIG.calendar_of_team("emea-sales")
    assert t.qualify_by == sla.qualify_by(policy, MONDAY_10_BERLIN, calendar=calendar)
    assert t.warn_at == sla.warning_at(policy, MONDAY_10_BERLIN, t.qualify_by, calendar=calendar)
    assert t.qualify_by is not None and t.warn_at is not None and MONDAY_10_BERLIN < t.warn_at < t.qualify_by


def test_the_accept_event_says_who_decided_for_whom_and_that_it_was_in_time():
    event = MQL.decide(accept(), CONFIG, now=MONDAY_10_BERLIN).event
    assert isinstance(event, SalAccepted)
    assert (event.handoff_id, event.cycle, event.owner, event.team) == (
        "h-1",
        2,
        "lena.hoffmann",
        "emea-sales",
    )
    assert (event.from_stage, event.to_stage, event.policy) == ("mql", "sal", "standard")
    assert (event.channel, event.campaign) == ("paid", "q1")
    assert event.in_time


def test_a_decision_after_the_deadline_is_late_and_at_the_deadline_is_not():
    at_deadline = MQL.decide(accept(), CONFIG, now=MQL.decide_by).event
    late = MQL.decide(accept(), CONFIG, now=MQL.decide_by + timedelta(seconds=1)).event
    assert at_deadline.in_time and not late.in_time


def test_a_sal_is_judged_against_its_qualify_deadline():
    sal = replace(MQL, stage=Stage.SAL, qualify_by=MONDAY_10_BERLIN + timedelta(days=3))
    bant = {"budget": "yes", "authority": "vp", "need": "crm", "timeline": "q2"}
    qualified = sal.decide(
        Decision(Action.QUALIFY, actor="lena.hoffmann", details=bant),
        CONFIG,
        now=sal.decide_by + timedelta(days=1),
    )
    assert isinstance(qualified.event, SqlQualified)
    assert qualified.event.in_time  # past decide_by, but within qualify_by
    assert qualified.event.bant == bant
    assert qualified.transition.qualify_by is None  # only accept starts a clock


def test_an_opportunity_carries_its_details():
    sql = replace(MQL, stage=Stage.SQL, qualify_by=None)
    decided = sql.decide(
        Decision(Action.OPPORTUNITY, actor="lena.hoffmann", details={"amount": 12000}),
        CONFIG,
        now=MONDAY_10_BERLIN,
    )
    assert isinstance(decided.event, SqoCreated) and decided.event.opportunity == {"amount": 12000}
    assert decided.event.in_time  # a stage without a deadline is always in time


def test_a_rejection_needs_a_reason_from_the_closed_list_and_carries_it():
    with pytest.raises(ReasonRequired):
        MQL.decide(Decision(Action.REJECT, actor="lena.hoffmann"), CONFIG, now=MONDAY_10_BERLIN)
    decided = MQL.decide(
        Decision(Action.REJECT, actor="lena.hoffmann", reason="not_ready", note="Q3"),
        CONFIG,
        now=MONDAY_10_BERLIN,
    )
    assert isinstance(decided.event, LeadRejected)
    assert (decided.event.reason, decided.event.note) == ("not_ready", "Q3")
    assert (decided.transition.to_stage, decided.transition.reason) == ("returned", "not_ready")


def test_an_action_the_stage_does_not_allow_is_refused_with_what_is_allowed():
    with pytest.raises(InvalidTransition) as refused:
        MQL.decide(Decision(Action.QUALIFY, actor="lena.hoffmann"), CONFIG, now=MONDAY_10_BERLIN)
    assert refused.value.allowed == (Action.ACCEPT, Action.REJECT, Action.DISQUALIFY)


def test_acting_on_an_older_version_is_refused_with_the_current_one():
    MQL.check_version(None)
    MQL.check_version(3)
    with pytest.raises(StaleVersion) as stale:
        MQL.check_version(2)
    assert stale.value.current == 3


def test_a_handoff_reads_from_any_stored_row():
    class Row:
        def __init__(self) -> None:
            for name, value in vars(MQL).items():
                setattr(self, name, value)
            self.stage = "mql"  # a row holds the stage as text
            self.lead = {"email": "ana@acme.com"}  # and more than the rules read

    assert Handoff.of(Row()) == MQL


def test_owners_a_handoff_may_go_to_are_the_ones_the_config_names():
    known = CONFIG.known_owners()
    assert {"lena.hoffmann", "katrin.weber", "enterprise", "inbound-queue", "sales-managers"} <= known
    CONFIG.check_owner("rachel.kim")  # a team manager
    with pytest.raises(UnknownOwner, match=r"someone\.else"):
        CONFIG.check_owner("someone.else")
    with pytest.raises(UnknownOwner):
        CONFIG.check_owner("Lena.Hoffmann")  # names are exact, as routing writes them


def test_reassigning_says_from_whom_to_whom_and_to_the_same_owner_is_nothing():
    reassigned = MQL.reassign("inbound-queue", reason="sla_breached")
    assert reassigned is not None
    assert reassigned.note == "lena.hoffmann → inbound-queue"
    assert reassigned.event == HandoffReassigned(
        handoff_id="h-1", from_owner="lena.hoffmann", to_owner="inbound-queue", reason="sla_breached"
    )
    assert MQL.reassign("lena.hoffmann", reason=None) is None


# --- who sees what ----------------------------------------------------------------------------


def test_a_rep_sees_their_own_handoffs_and_their_teams_queues():
    lena = Viewer(owner="lena.hoffmann")
    assert visible_owners(lena, CONFIG) == ("lena.hoffmann", "emea-sales")
    assert can_see(lena, CONFIG, "lena.hoffmann") and can_see(lena, CONFIG, "emea-sales")
    assert not can_see(lena, CONFIG, "maya.johnson")
    assert not can_see(lena, CONFIG, "amer-sales")


def test_a_team_manager_without_the_manage_scope_sees_the_team_queue():
    assert visible_owners(Viewer(owner="katrin.weber"), CONFIG) == ("katrin.weber", "emea-sales")


def test_managers_and_integrations_see_every_handoff():
    assert visible_owners(Viewer(owner="lena.hoffmann", manages=True), CONFIG) is None
    assert visible_owners(Viewer(owner=None), CONFIG) is None
    assert can_see(Viewer(owner=None), CONFIG, "anyone")


def test_a_rep_in_no_team_sees_only_their_own():
    assert visible_owners(Viewer(owner="someone.new"), CONFIG) == ("someone.new",)


# --- Idempotency-Key: the same request ----------------------------------------------------------


def test_the_same_method_path_and_body_is_the_same_request():
    one = idempotency.fingerprint("POST", "/v1/handoffs/h-1/accept", b'{"note": "x"}')
    assert one == idempotency.fingerprint("POST", "/v1/handoffs/h-1/accept", b'{"note": "x"}')
    assert len(one) == 64  # sha256, hex


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/v1/handoffs/h-1/accept", b'{"note": "x"}'),
        ("POST", "/v1/handoffs/h-2/accept", b'{"note": "x"}'),
        ("POST", "/v1/handoffs/h-1/reject", b'{"note": "x"}'),
        ("POST", "/v1/handoffs/h-1/accept", b'{"note": "y"}'),
        ("POST", "/v1/handoffs/h-1/accept", b""),
    ],
)
def test_a_different_method_path_or_body_is_a_different_request(method: str, path: str, body: bytes):
    first = idempotency.fingerprint("POST", "/v1/handoffs/h-1/accept", b'{"note": "x"}')
    assert idempotency.fingerprint(method, path, body) != first
