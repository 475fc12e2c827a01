"""The handoff lifecycle: which action moves a handoff from which stage, and what it must carry.

Pure rules, no I/O. The service decides *who* may act (a rep, a manager, an admin for
``reopen``); this module decides whether the action makes sense at all.
"""

from enum import StrEnum

from shared.event_types import EventType


class Stage(StrEnum):
    MQL = "mql"
    SAL = "sal"
    SQL = "sql"
    SQO = "sqo"
    RETURNED = "returned"
    DISQUALIFIED = "disqualified"


class Action(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"
    QUALIFY = "qualify"
    OPPORTUNITY = "opportunity"
    RETURN = "return"
    DISQUALIFY = "disqualify"
    REOPEN = "reopen"


class ReturnReason(StrEnum):
    """Why sales sent a lead back to marketing; a closed list so the reasons can be counted."""

    INACCURATE_DATA = "inaccurate_data"
    INCOMPLETE_DATA = "incomplete_data"
    NOT_A_FIT = "not_a_fit"
    NOT_READY = "not_ready"
    DUPLICATE = "duplicate"
    OTHER = "other"


# The whole lifecycle in one table. `sqo` has no way out: it is the end of the won path, and
# losing a deal later is the CRM's business, not the handoff's.
_TRANSITIONS: dict[Stage, dict[Action, Stage]] = {
    Stage.MQL: {
        Action.ACCEPT: Stage.SAL,
        Action.REJECT: Stage.RETURNED,
        Action.DISQUALIFY: Stage.DISQUALIFIED,
    },
    Stage.SAL: {
        Action.QUALIFY: Stage.SQL,
        Action.RETURN: Stage.RETURNED,
        Action.DISQUALIFY: Stage.DISQUALIFIED,
    },
    Stage.SQL: {
        Action.OPPORTUNITY: Stage.SQO,
        Action.RETURN: Stage.RETURNED,
        Action.DISQUALIFY: Stage.DISQUALIFIED,
    },
    Stage.SQO: {},
    Stage.RETURNED: {Action.REOPEN: Stage.MQL},
    Stage.DISQUALIFIED: {Action.REOPEN: Stage.MQL},
}

_EVENT_TYPES: dict[Action, EventType] = {
    Action.ACCEPT: EventType.SAL_ACCEPTED,
    Action.REJECT: EventType.LEAD_REJECTED,
    Action.RETURN: EventType.LEAD_RETURNED,
    Action.QUALIFY: EventType.SQL_QUALIFIED,
    Action.OPPORTUNITY: EventType.SQO_CREATED,
    Action.DISQUALIFY: EventType.LEAD_DISQUALIFIED,
    Action.REOPEN: EventType.HANDOFF_REOPENED,
}

# Actions that send a lead back to marketing and so must say why, from the closed list.
_SENDS_BACK = frozenset({Action.REJECT, Action.RETURN})


class InvalidTransition(Exception):
    """The action does not apply to a handoff in its current stage."""

    def __init__(self, current: Stage, action: Action, allowed: tuple[Action, ...]) -> None:
        self.current = current
        self.action = action
        self.allowed = allowed
        listed = ", ".join(allowed) if allowed else "none"
        super().__init__(f"cannot {action} a handoff in stage {current}; allowed: {listed}")


class ReasonRequired(ValueError):
    """An action is missing the reason or note it must carry; `field` and `rule` say which."""

    def __init__(self, field: str, rule: str, message: str) -> None:
        self.field = field
        self.rule = rule
        super().__init__(message)


def allowed_actions(current: Stage) -> tuple[Action, ...]:
    """The actions that apply in `current`, in the order `Action` declares them."""
    return tuple(_TRANSITIONS[current])


def next_stage(current: Stage, action: Action) -> Stage:
    try:
        return _TRANSITIONS[current][action]
    except KeyError:
        raise InvalidTransition(current, action, allowed_actions(current)) from None


def check_reason(action: Action, reason: str | None, note: str | None) -> ReturnReason | None:
    """Validate what `action` must carry; return the return reason when it takes one.

    Reject and return need a reason from `ReturnReason` (and a note when it is `other`), so
    returns can be aggregated. Disqualify needs a free-text reason, since it discards the
    lead. Other actions carry no reason and ignore any given.
    """
    if action in _SENDS_BACK:
        return _check_return_reason(action, reason, note)
    if action is Action.DISQUALIFY and _is_blank(reason):
        raise ReasonRequired(
            "reason", "required", "disqualify needs a reason saying why the lead is discarded."
        )
    return None


def event_type_for(action: Action) -> EventType:
    """The `lead.lifecycle` event type a successful action emits."""
    return _EVENT_TYPES[action]


def _check_return_reason(action: Action, reason: str | None, note: str | None) -> ReturnReason:
    allowed = ", ".join(ReturnReason)
    if reason is None or _is_blank(reason):
        raise ReasonRequired("reason", "required", f"{action} needs a reason, one of: {allowed}.")
    try:
        chosen = ReturnReason(reason)
    except ValueError:
        raise ReasonRequired(
            "reason",
            f"one of: {allowed}",
            f"'{reason}' is not a return reason; use one of: {allowed}.",
        ) from None
    if chosen is ReturnReason.OTHER and _is_blank(note):
        raise ReasonRequired(
            "note", "required when reason is other", "reason 'other' needs a note saying why."
        )
    return chosen


def _is_blank(text: str | None) -> bool:
    return text is None or not text.strip()
