import itertools

import pytest

from services.handoff.domain import (
    Action,
    InvalidTransition,
    ReasonRequired,
    Stage,
    allowed_actions,
    check_reason,
    event_type_for,
    next_stage,
)
from services.handoff.return_reasons import ReturnReasons

REASONS = ReturnReasons().reasons

# The lifecycle as PRODUCT.md draws it; every pair not listed here must be refused.
EXPECTED = {
    (Stage.MQL, Action.ACCEPT): Stage.SAL,
    (Stage.MQL, Action.REJECT): Stage.RETURNED,
    (Stage.MQL, Action.DISQUALIFY): Stage.DISQUALIFIED,
    (Stage.SAL, Action.QUALIFY): Stage.SQL,
    (Stage.SAL, Action.RETURN): Stage.RETURNED,
    (Stage.SAL, Action.DISQUALIFY): Stage.DISQUALIFIED,
    (Stage.SQL, Action.OPPORTUNITY): Stage.SQO,
    (Stage.SQL, Action.RETURN): Stage.RETURNED,
    (Stage.SQL, Action.DISQUALIFY): Stage.DISQUALIFIED,
    (Stage.SQO, Action.WIN): Stage.WON,
    (Stage.SQO, Action.LOSE): Stage.LOST,
    (Stage.RETURNED, Action.REOPEN): Stage.MQL,
    (Stage.DISQUALIFIED, Action.REOPEN): Stage.MQL,
}
FORBIDDEN = [pair for pair in itertools.product(Stage, Action) if pair not in EXPECTED]


@pytest.mark.parametrize(("current", "action"), list(EXPECTED))
def test_allowed_action_moves_the_handoff_to_its_next_stage(current: Stage, action: Action):
    assert next_stage(current, action) is EXPECTED[(current, action)]


@pytest.mark.parametrize(("current", "action"), FORBIDDEN)
def test_action_outside_the_lifecycle_is_refused(current: Stage, action: Action):
    with pytest.raises(InvalidTransition) as refused:
        next_stage(current, action)
    assert refused.value.current is current
    assert refused.value.action is action
    assert action not in refused.value.allowed


@pytest.mark.parametrize("current", list(Stage))
def test_allowed_actions_list_exactly_the_transitions_out_of_a_stage(current: Stage):
    expected = {action for (stage, action) in EXPECTED if stage is current}
    assert set(allowed_actions(current)) == expected


def test_refusal_says_what_was_tried_and_what_is_allowed():
    with pytest.raises(InvalidTransition) as refused:
        next_stage(Stage.MQL, Action.QUALIFY)
    assert refused.value.allowed == (Action.ACCEPT, Action.REJECT, Action.DISQUALIFY)
    assert str(refused.value) == (
        "cannot qualify a handoff in stage mql; allowed: accept, reject, disqualify"
    )


def test_an_opportunity_ends_won_or_lost_and_that_is_final():
    assert allowed_actions(Stage.SQO) == (Action.WIN, Action.LOSE)
    for closed in (Stage.WON, Stage.LOST):
        assert allowed_actions(closed) == ()
        with pytest.raises(InvalidTransition, match="allowed: none"):
            next_stage(closed, Action.REOPEN)


@pytest.mark.parametrize("action", [Action.REJECT, Action.RETURN])
@pytest.mark.parametrize("reason", [r for r in REASONS if r != "other"])
def test_sending_a_lead_back_takes_any_listed_reason(action: Action, reason: str):
    assert check_reason(action, reason, None) == reason


@pytest.mark.parametrize("action", [Action.REJECT, Action.RETURN])
def test_other_reason_with_a_note_is_accepted(action: Action):
    assert check_reason(action, "other", "asked to be called next year") == "other"


@pytest.mark.parametrize("note", [None, "", "   "])
def test_other_reason_needs_a_note(note: str | None):
    with pytest.raises(ReasonRequired) as missing:
        check_reason(Action.RETURN, "other", note)
    assert missing.value.field == "note"


@pytest.mark.parametrize("action", [Action.REJECT, Action.RETURN])
@pytest.mark.parametrize("reason", [None, "", "  "])
def test_sending_a_lead_back_needs_a_reason(action: Action, reason: str | None):
    with pytest.raises(ReasonRequired) as missing:
        check_reason(action, reason, "a note is not a reason")
    assert missing.value.field == "reason"
    assert missing.value.rule == "required"


def test_unknown_reason_is_refused_naming_the_allowed_ones():
    with pytest.raises(ReasonRequired) as refused:
        check_reason(Action.REJECT, "too_expensive", None)
    assert refused.value.field == "reason"
    for reason in REASONS:
        assert reason in str(refused.value)
        assert reason in refused.value.rule


@pytest.mark.parametrize("action", [Action.DISQUALIFY, Action.LOSE, Action.REOPEN])
def test_discarding_losing_or_reopening_needs_a_reason_in_words(action: Action):
    assert check_reason(action, "competitor", None) is None
    with pytest.raises(ReasonRequired) as missing:
        check_reason(action, " ", None)
    assert missing.value.field == "reason"


@pytest.mark.parametrize("action", [Action.ACCEPT, Action.QUALIFY, Action.OPPORTUNITY, Action.WIN])
def test_other_actions_carry_no_reason(action: Action):
    assert check_reason(action, None, None) is None
    assert check_reason(action, "not_a_fit", "ignored") is None


@pytest.mark.parametrize(
    ("action", "event_type"),
    [
        (Action.ACCEPT, "lead.sal_accepted"),
        (Action.REJECT, "lead.rejected"),
        (Action.RETURN, "lead.returned"),
        (Action.QUALIFY, "lead.sql_qualified"),
        (Action.OPPORTUNITY, "lead.sqo_created"),
        (Action.DISQUALIFY, "lead.disqualified"),
        (Action.REOPEN, "handoff.reopened"),
        (Action.WIN, "lead.opportunity_won"),
        (Action.LOSE, "lead.opportunity_lost"),
    ],
)
def test_each_action_emits_its_lifecycle_event(action: Action, event_type: str):
    assert event_type_for(action) == event_type
