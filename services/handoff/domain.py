"""The handoff lifecycle: which action moves a handoff from which stage, and what it must carry.

Pure rules, no I/O. `Handoff.decide` applies a sales decision: the transition, the SLA
clock of the next stage, and the event it announces. Who may see and act on a handoff is
`visibility`'s; this module decides whether the action makes sense at all. `Handoff.reopen`
undoes a return or disqualification (a manager's call); the CRM's outcome of an opportunity
(won or lost) is one more decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.handoff import sla
from services.handoff.business_hours import BusinessCalendar
from services.handoff.return_reasons import ReturnReasons
from services.handoff.routing import RoutingConfig
from services.handoff.sla import SlaConfig, SlaPolicy
from shared.event_types import EventType
from shared.events import (
    HandoffReassigned,
    HandoffReopened,
    HandoffTransition,
    LeadDisqualified,
    LeadRejected,
    LeadReturned,
    OpportunityLost,
    OpportunityWon,
    SalAccepted,
    SqlQualified,
    SqoCreated,
)


class Stage(StrEnum):
    MQL = "mql"
    SAL = "sal"
    SQL = "sql"
    SQO = "sqo"
    WON = "won"
    LOST = "lost"
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
    WIN = "win"
    LOSE = "lose"


# The whole lifecycle in one table. An opportunity ends won or lost, as the CRM reports it;
# both are final. Returned and disqualified handoffs can be reopened by a manager.
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
    Stage.SQO: {Action.WIN: Stage.WON, Action.LOSE: Stage.LOST},
    Stage.WON: {},
    Stage.LOST: {},
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
    Action.WIN: EventType.OPPORTUNITY_WON,
    Action.LOSE: EventType.OPPORTUNITY_LOST,
}
# The actions that discard or close something, and so must say why in words.
_NEEDS_WORDS = {
    Action.DISQUALIFY: "disqualify needs a reason saying why the lead is discarded.",
    Action.LOSE: "a lost opportunity needs a reason saying why it was lost.",
    Action.REOPEN: "reopening needs a reason saying why the decision is undone.",
}

# The stages in which a handoff counts against its owner's capacity: not yet ended.
OPEN_STAGES = (Stage.MQL, Stage.SAL, Stage.SQL)

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


def check_reason(
    action: Action, reason: str | None, note: str | None, reasons: ReturnReasons | None = None
) -> str | None:
    """Validate what `action` must carry; return the return reason when it takes one.

    Reject and return need a reason from the configured closed list (and a note when it is
    one that needs one, `other` always), so returns can be aggregated. Disqualify, lose and
    reopen need a free-text reason. Other actions carry no reason and ignore any given.
    """
    if action in _SENDS_BACK:
        return _check_return_reason(action, reason, note, reasons or ReturnReasons())
    if action in _NEEDS_WORDS and _is_blank(reason):
        raise ReasonRequired("reason", "required", _NEEDS_WORDS[action])
    return None


def check_won(amount: object | None, currency: str | None) -> None:
    """A won opportunity says what it was worth: an amount and its currency."""
    if amount is None:
        raise ReasonRequired("amount", "required when outcome is won", "a won opportunity needs its amount.")
    if currency is None:
        raise ReasonRequired(
            "currency", "required when outcome is won", "a won opportunity needs the amount's currency."
        )


def event_type_for(action: Action) -> EventType:
    """The `lead.lifecycle` event type a successful action emits."""
    return _EVENT_TYPES[action]


def _check_return_reason(action: Action, reason: str | None, note: str | None, reasons: ReturnReasons) -> str:
    allowed = reasons.listed()
    if reason is None or _is_blank(reason):
        raise ReasonRequired("reason", "required", f"{action} needs a reason, one of: {allowed}.")
    if reason not in reasons.reasons:
        raise ReasonRequired(
            "reason",
            f"one of: {allowed}",
            f"'{reason}' is not a return reason; use one of: {allowed}.",
        )
    if reason in reasons.need_a_note and _is_blank(note):
        raise ReasonRequired(
            "note", f"required when reason is {reason}", f"reason '{reason}' needs a note saying why."
        )
    return reason


def _is_blank(text: str | None) -> bool:
    return text is None or not text.strip()


# --- the handoff and its decisions -----------------------------------------------------------


@dataclass(frozen=True)
class HandoffConfig:
    """The SLA policies and routing the rules read."""

    sla: SlaConfig
    routing: RoutingConfig
    return_reasons: ReturnReasons = field(default_factory=ReturnReasons)

    def calendar_of_team(self, team: str | None) -> BusinessCalendar | None:
        """The team's own business hours, if it has any; else the policy's calendar applies."""
        if team is None:
            return None
        name = self.routing.team_named(team).calendar
        return self.sla.calendar_named(name) if name else None

    def policy_named(self, name: str) -> SlaPolicy:
        """The handoff's policy; the fallback if the config no longer has it."""
        return next((p for p in self.sla.policies if p.name == name), self.sla.fallback)

    def teams_of(self, owner: str) -> set[str]:
        return {team.name for team in self.routing.teams if owner in team.members or owner == team.manager}

    def known_owners(self) -> frozenset[str]:
        """Everyone and every queue the config names: a handoff may only be given to one of them."""
        owners = {self.routing.fallback_queue, self.sla.default_owner}
        for team in self.routing.teams:
            owners.update([team.name, *team.members, *([team.manager] if team.manager else [])])
        owners.update(rule.assign.owner for rule in self.routing.rules if rule.assign.owner)
        owners.update(self.routing.reps)
        owners.update(r.backup for r in self.routing.reps.values() if r.backup)
        owners.update(p.on_breach.reassign_to for p in self.sla.policies if p.on_breach.reassign_to)
        return frozenset(owners)

    def check_owner(self, owner: str) -> None:
        """Refuse an owner the routing and SLA config do not know (a typo would hide a lead)."""
        if owner not in self.known_owners():
            raise UnknownOwner(owner)


class UnknownOwner(Exception):
    """A handoff was to go to an owner or queue the config does not name."""

    def __init__(self, owner: str) -> None:
        super().__init__(f"{owner!r} is not a rep, manager, team or queue of the routing or SLA config")
        self.owner = owner


class Superseded(Exception):
    """The lead has a handoff of a later cycle: reopening this one would hand it to sales twice."""

    def __init__(self, handoff_id: str) -> None:
        super().__init__(f"handoff {handoff_id} belongs to an earlier cycle; the lead has a newer handoff")
        self.handoff_id = handoff_id


class StaleVersion(Exception):
    """The client acted on an older version of the handoff (If-Match)."""

    def __init__(self, current: int) -> None:
        super().__init__(f"the handoff is at version {current}")
        self.current = current


@dataclass(frozen=True)
class Decision:
    """What a rep or manager decided, as the API received it."""

    action: Action
    actor: str
    reason: str | None = None
    note: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)  # BANT, opportunity or won-deal fields


@dataclass(frozen=True)
class Transition:
    """A decision as recorded: the move, who made it and why, and the next stage's SLA, if it has one."""

    handoff_id: str
    at: datetime
    actor: str
    action: str
    from_stage: str
    to_stage: str
    reason: str | None = None
    note: str | None = None
    qualify_by: datetime | None = None  # set: the next stage's deadline, with a warning timer at warn_at
    warn_at: datetime | None = None


@dataclass(frozen=True)
class Decided:
    """The outcome of a decision: the transition to record and the event to announce."""

    transition: Transition
    event: HandoffTransition


@dataclass(frozen=True)
class Reopened:
    """A reopened handoff: the move, the new decision deadline with its warning, and the event."""

    transition: Transition
    decide_by: datetime
    warn_at: datetime
    event: HandoffReopened


@dataclass(frozen=True)
class Reassigned:
    """A change of owner: the history note and the event to announce."""

    note: str
    event: HandoffReassigned


EVENT_OF: dict[Action, type[HandoffTransition]] = {
    Action.ACCEPT: SalAccepted,
    Action.REJECT: LeadRejected,
    Action.RETURN: LeadReturned,
    Action.QUALIFY: SqlQualified,
    Action.OPPORTUNITY: SqoCreated,
    Action.DISQUALIFY: LeadDisqualified,
    Action.WIN: OpportunityWon,
    Action.LOSE: OpportunityLost,
}


@dataclass(frozen=True)
class Handoff:
    """A lead handed to sales for one cycle, as its rules see it."""

    handoff_id: str
    lead_id: str
    cycle: int
    stage: Stage
    owner: str
    team: str | None
    policy: str
    decide_by: datetime
    qualify_by: datetime | None
    channel: str | None
    campaign: str | None
    version: int

    @classmethod
    def of(cls, stored: Any) -> Handoff:
        """The handoff of a stored row (anything with its fields as attributes)."""
        values = {name: getattr(stored, name) for name in _HANDOFF_FIELDS}
        return cls(**values, stage=Stage(stored.stage))

    def check_version(self, expected: int | None) -> None:
        """Optimistic concurrency: acting on an older version than the current one is refused."""
        if expected is not None and expected != self.version:
            raise StaleVersion(self.version)

    @property
    def due(self) -> datetime | None:
        """The deadline of the stage it is in: decide an MQL by, qualify (or return) a SAL by.
        An opportunity has none: how long a deal takes is the CRM's business."""
        if self.stage is Stage.MQL:
            return self.decide_by
        return None if self.stage is Stage.SQO else self.qualify_by

    def decide(self, decision: Decision, config: HandoffConfig, *, now: datetime) -> Decided:
        """Apply a sales decision at `now`: check transition and reason, start the SAL clock on
        accept, and say whether it came in time. Raises InvalidTransition or ReasonRequired."""
        if decision.action is Action.REOPEN:
            raise ValueError("reopening is Handoff.reopen's")
        target = next_stage(self.stage, decision.action)
        reason = check_reason(decision.action, decision.reason, decision.note, config.return_reasons)
        reason = reason or decision.reason
        if decision.action is Action.WIN:
            check_won(decision.details.get("amount"), decision.details.get("currency"))
        transition = Transition(
            handoff_id=self.handoff_id,
            at=now,
            actor=decision.actor,
            action=decision.action.value,
            from_stage=self.stage.value,
            to_stage=target.value,
            reason=reason,
            note=decision.note,
        )
        if decision.action is Action.ACCEPT:  # the SAL stage's clock starts: qualify or return by then
            policy, calendar = config.policy_named(self.policy), config.calendar_of_team(self.team)
            qualify_by = sla.qualify_by(policy, now, calendar=calendar)
            warn_at = sla.warning_at(policy, now, qualify_by, calendar=calendar)
            transition = replace(transition, qualify_by=qualify_by, warn_at=warn_at)
        event = EVENT_OF[decision.action](
            handoff_id=self.handoff_id,
            cycle=self.cycle,
            from_stage=self.stage.value,
            to_stage=target.value,
            actor=decision.actor,
            owner=self.owner,
            policy=self.policy,
            in_time=self.due is None or now <= self.due,
            reason=reason,
            note=decision.note,
            channel=self.channel,
            campaign=self.campaign,
            team=self.team,
            **_details(decision),
        )
        return Decided(transition, event)

    def reopen(
        self, decision: Decision, config: HandoffConfig, *, now: datetime, superseded: bool
    ) -> Reopened:
        """Undo a return or disqualification at `now`: an MQL again, with a new decision deadline
        from now under its policy. Refused once the lead has a handoff of a later cycle."""
        target = next_stage(self.stage, Action.REOPEN)
        check_reason(Action.REOPEN, decision.reason, decision.note)
        if superseded:
            raise Superseded(self.handoff_id)
        policy, calendar = config.policy_named(self.policy), config.calendar_of_team(self.team)
        decide_by = sla.decide_by(policy, now, calendar=calendar)
        warn_at = sla.warning_at(policy, now, decide_by, calendar=calendar)
        transition = Transition(
            handoff_id=self.handoff_id,
            at=now,
            actor=decision.actor,
            action=Action.REOPEN.value,
            from_stage=self.stage.value,
            to_stage=target.value,
            reason=decision.reason,
            note=decision.note,
        )
        event = HandoffReopened(
            handoff_id=self.handoff_id,
            cycle=self.cycle,
            from_stage=self.stage.value,
            to_stage=target.value,
            actor=decision.actor,
            owner=self.owner,
            policy=self.policy,
            in_time=True,
            reason=decision.reason,
            note=decision.note,
            channel=self.channel,
            campaign=self.campaign,
            team=self.team,
            decide_by=decide_by,
        )
        return Reopened(transition, decide_by, warn_at, event)

    def reassign(self, to_owner: str, *, reason: str | None) -> Reassigned | None:
        """Give it to another owner or queue; None when it already is theirs."""
        if to_owner == self.owner:
            return None
        event = HandoffReassigned(
            handoff_id=self.handoff_id, from_owner=self.owner, to_owner=to_owner, reason=reason
        )
        return Reassigned(note=f"{self.owner} → {to_owner}", event=event)


_HANDOFF_FIELDS = tuple(name for name in Handoff.__dataclass_fields__ if name != "stage")


def _details(decision: Decision) -> dict[str, Any]:
    if decision.action is Action.QUALIFY:
        return {"bant": dict(decision.details)}
    if decision.action is Action.OPPORTUNITY:
        return {"opportunity": dict(decision.details)}
    if decision.action is Action.WIN:
        return {"amount": decision.details["amount"], "currency": decision.details["currency"]}
    return {}
