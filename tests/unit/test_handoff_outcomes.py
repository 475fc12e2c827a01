"""An opportunity's outcome (won or lost), reopening a returned or disqualified handoff, and
the configurable closed list of return reasons. Pure: services/handoff/domain.py and
return_reasons.py, no database."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from services.handoff import sla
from services.handoff.config_files import load_return_reasons, load_routing_config, load_sla_config
from services.handoff.domain import (
    Action,
    Decision,
    Handoff,
    HandoffConfig,
    InvalidTransition,
    ReasonRequired,
    Stage,
    Superseded,
)
from services.handoff.return_reasons import ReturnReasons, ReturnReasonsFileError
from shared.events import HandoffReopened, OpportunityLost, OpportunityWon

CONFIG_DIR = Path(__file__).parents[2] / "config"
SLA = load_sla_config(CONFIG_DIR / "sla.yaml")
CONFIG = HandoffConfig(
    sla=SLA,
    routing=load_routing_config(CONFIG_DIR / "routing.yaml", calendars=[c.name for c in SLA.calendars]),
)
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SQO = Handoff(
    handoff_id="h-1",
    lead_id="lead-1",
    cycle=1,
    stage=Stage.SQO,
    owner="lena.hoffmann",
    team="emea-sales",
    policy="standard",
    decide_by=NOW - timedelta(days=20),
    qualify_by=NOW - timedelta(days=10),  # long past: an opportunity has no SLA
    channel="paid",
    campaign="q1",
    version=5,
)


def won(amount: object = Decimal("12000.00"), currency: object = "EUR") -> Decision:
    details = {k: v for k, v in (("amount", amount), ("currency", currency)) if v is not None}
    return Decision(Action.WIN, actor="crm", details=details)


def test_a_won_opportunity_closes_the_handoff_and_announces_its_amount_and_currency():
    decided = SQO.decide(won(), CONFIG, now=NOW)
    assert (decided.transition.from_stage, decided.transition.to_stage) == ("sqo", "won")
    event = decided.event
    assert isinstance(event, OpportunityWon)
    assert (event.amount, event.currency, event.cycle, event.owner) == (
        Decimal("12000.00"),
        "EUR",
        1,
        "lena.hoffmann",
    )
    assert event.in_time  # no deadline to miss


@pytest.mark.parametrize(
    ("amount", "currency", "field"), [(None, "EUR", "amount"), (Decimal(5), None, "currency")]
)
def test_a_won_opportunity_needs_its_amount_and_currency(amount: object, currency: object, field: str):
    with pytest.raises(ReasonRequired) as missing:
        SQO.decide(won(amount, currency), CONFIG, now=NOW)
    assert missing.value.field == field


def test_a_lost_opportunity_says_why():
    decided = SQO.decide(Decision(Action.LOSE, actor="crm", reason="chose a competitor"), CONFIG, now=NOW)
    assert isinstance(decided.event, OpportunityLost)
    assert (decided.transition.to_stage, decided.event.reason) == ("lost", "chose a competitor")
    with pytest.raises(ReasonRequired) as missing:
        SQO.decide(Decision(Action.LOSE, actor="crm"), CONFIG, now=NOW)
    assert missing.value.field == "reason"


@pytest.mark.parametrize("stage", [Stage.MQL, Stage.SAL, Stage.SQL, Stage.WON, Stage.LOST, Stage.RETURNED])
def test_only_an_open_opportunity_has_an_outcome(stage: Stage):
    with pytest.raises(InvalidTransition):
        replace(SQO, stage=stage).decide(won(), CONFIG, now=NOW)


def reopen_of(stage: Stage, *, superseded: bool = False, reason: str | None = "returned by mistake"):
    handoff = replace(SQO, stage=stage)
    return handoff.reopen(
        Decision(Action.REOPEN, actor="mia.manager", reason=reason), CONFIG, now=NOW, superseded=superseded
    )


@pytest.mark.parametrize("stage", [Stage.RETURNED, Stage.DISQUALIFIED])
def test_reopening_makes_the_handoff_an_mql_again_with_a_new_decision_deadline_from_now(stage: Stage):
    reopened = reopen_of(stage)
    policy, calendar = CONFIG.policy_named("standard"), CONFIG.calendar_of_team("emea-sales")
    assert reopened.decide_by == sla.decide_by(policy, NOW, calendar=calendar)
    assert NOW < reopened.warn_at < reopened.decide_by
    t = reopened.transition
    assert (t.action, t.from_stage, t.to_stage, t.actor, t.reason) == (
        "reopen",
        stage.value,
        "mql",
        "mia.manager",
        "returned by mistake",
    )
    event = reopened.event
    assert isinstance(event, HandoffReopened)
    assert (event.cycle, event.from_stage, event.to_stage, event.decide_by) == (
        1,
        stage.value,
        "mql",
        reopened.decide_by,
    )


@pytest.mark.parametrize("stage", [Stage.MQL, Stage.SAL, Stage.SQL, Stage.SQO, Stage.WON, Stage.LOST])
def test_only_a_returned_or_disqualified_handoff_can_be_reopened(stage: Stage):
    with pytest.raises(InvalidTransition):
        reopen_of(stage)


def test_reopening_needs_a_reason_and_is_refused_once_the_lead_has_a_newer_handoff():
    with pytest.raises(ReasonRequired):
        reopen_of(Stage.RETURNED, reason=" ")
    with pytest.raises(Superseded):
        reopen_of(Stage.RETURNED, superseded=True)


def test_reopen_goes_through_its_own_rule_not_decide():
    with pytest.raises(ValueError, match="reopen"):
        replace(SQO, stage=Stage.RETURNED).decide(
            Decision(Action.REOPEN, actor="m", reason="x"), CONFIG, now=NOW
        )


# --- return reasons from config -------------------------------------------------------------


def test_the_shipped_return_reasons_are_the_closed_list_with_other_needing_a_note():
    shipped = load_return_reasons(CONFIG_DIR / "return-reasons.yaml")
    assert shipped == ReturnReasons()
    assert "not_a_fit" in shipped.reasons and shipped.need_a_note == ("other",)


def test_a_configured_reason_is_accepted_and_one_off_the_list_refused():
    reasons = ReturnReasons(
        reasons=("no_budget", "wrong_region", "other"), need_a_note=("other", "wrong_region")
    )
    config = replace(CONFIG, return_reasons=reasons)
    mql = replace(SQO, stage=Stage.MQL, decide_by=NOW + timedelta(hours=1))
    decided = mql.decide(Decision(Action.REJECT, actor="lena.hoffmann", reason="no_budget"), config, now=NOW)
    assert decided.event.reason == "no_budget"
    with pytest.raises(ReasonRequired) as refused:
        mql.decide(Decision(Action.REJECT, actor="lena.hoffmann", reason="not_a_fit"), config, now=NOW)
    assert refused.value.rule == "one of: no_budget, wrong_region, other"
    with pytest.raises(ReasonRequired) as no_note:
        mql.decide(Decision(Action.REJECT, actor="lena.hoffmann", reason="wrong_region"), config, now=NOW)
    assert no_note.value.field == "note"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("reasons: [no_budget]\n", "`other` must be a reason"),
        (
            "reasons: [no_budget, other]\nneed_a_note: []\n",
            "`other` must be a reason, and one that needs a note",
        ),
        ("reasons: [No Budget, other]\n", "lower_snake_case"),
        ("reasons: [other, other]\n", "must not repeat"),
        ("reasons: [other]\nneed_a_note: [other, late]\n", "not listed: late"),
    ],
)
def test_a_return_reasons_file_that_breaks_the_rules_is_refused_at_its_line(
    tmp_path: Path, text: str, message: str
):
    path = tmp_path / "return-reasons.yaml"
    path.write_text(text)
    with pytest.raises(ReturnReasonsFileError, match=message):
        load_return_reasons(path)
