"""The handoff lifecycle: which action moves a handoff from which stage, and what it must carry.

Pure rules, no I/O. `Handoff.decide` applies a sales decision: the transition, the SLA
clock of the next stage, and the event it announces. Who may see and act on a handoff is
`visibility`'s; this module decides whether the action makes sense at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.handoff import sla
from services.handoff.business_hours import BusinessCalendar
from services.handoff.routing import RoutingConfig
from services.handoff.sla import SlaConfig, SlaPolicy
from shared.event_types import EventType
from shared.events import (
    HandoffReassigned,
    HandoffTransition,
    LeadDisqualified,
    LeadRejected,
    LeadReturned,
    SalAccepted,
    SqlQualified,
    SqoCreated,
)


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


# --- the handoff and its decisions -----------------------------------------------------------


@dataclass(frozen=True)
class HandoffConfig:
    """The SLA policies and routing the rules read."""

    sla: SlaConfig
    routing: RoutingConfig

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
    details: Mapping[str, Any] = field(default_factory=dict)  # BANT or opportunity fields


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
        """The deadline of the stage it is in: decide an MQL by, qualify (or return) a SAL by."""
        return self.decide_by if self.stage is Stage.MQL else self.qualify_by

    def decide(self, decision: Decision, config: HandoffConfig, *, now: datetime) -> Decided:
        """Apply a sales decision at `now`: check transition and reason, start the SAL clock on
        accept, and say whether it came in time. Raises InvalidTransition or ReasonRequired."""
        target = next_stage(self.stage, decision.action)
        reason = check_reason(decision.action, decision.reason, decision.note) or decision.reason
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
    return {}
