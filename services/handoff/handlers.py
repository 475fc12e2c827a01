"""handoff's use cases: open a handoff for each MQL, route it, and apply sales decisions.

Each runs in one transaction with the events it causes (outbox) and the SLA
timers it schedules or cancels.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from services.handoff import sla, store, webhooks
from services.handoff.business_hours import BusinessCalendar
from services.handoff.domain import Action, Stage, check_reason, next_stage
from services.handoff.routing import RouteDecision, RoutingConfig, route
from services.handoff.sla import SlaConfig, SlaPolicy
from shared.consumer import BatchHandler, Handler
from shared.envelope import Envelope, utcnow
from shared.events import (
    HandoffCreated,
    HandoffReassigned,
    HandoffTransition,
    LeadDisqualified,
    LeadRejected,
    LeadReturned,
    MqlReached,
    SalAccepted,
    SqlQualified,
    SqoCreated,
)
from shared.unit_of_work import UnitOfWork

EVENT_OF: dict[Action, type[HandoffTransition]] = {
    Action.ACCEPT: SalAccepted,
    Action.REJECT: LeadRejected,
    Action.RETURN: LeadReturned,
    Action.QUALIFY: SqlQualified,
    Action.OPPORTUNITY: SqoCreated,
    Action.DISQUALIFY: LeadDisqualified,
}


@dataclass(frozen=True)
class HandoffConfig:
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


class HandoffNotFound(LookupError):
    pass


class StaleVersion(Exception):
    """The client acted on an older version of the handoff (If-Match)."""

    def __init__(self, current: int) -> None:
        super().__init__(f"the handoff is at version {current}")
        self.current = current


@dataclass(frozen=True)
class Decision:
    action: Action
    actor: str
    reason: str | None = None
    note: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)  # BANT or opportunity fields


def make_handlers(config: HandoffConfig) -> tuple[Mapping[str, Handler], Mapping[str, BatchHandler]]:
    """MQLs open handoffs one by one; the handoff events fan out to webhook deliveries in batches."""

    async def on_mql(uow: UnitOfWork, envelope: Envelope, mql: MqlReached) -> None:
        # The SLA clock starts when sales gets the lead (when scoring announced the MQL),
        # which is also stable under redelivery.
        await open_handoff(
            uow,
            config,
            lead_id=envelope.lead_id or "",
            mql=mql,
            mql_at=envelope.occurred_at,
            handed_off_at=envelope.produced_at,
        )

    return {MqlReached.event_type: on_mql}, {
        event_type: webhooks.enqueue for event_type in webhooks.EVENT_TYPES
    }


async def assign(
    uow: UnitOfWork, config: HandoffConfig, *, traits: Mapping[str, Any], policy: str
) -> RouteDecision:
    """Route by the rules; a team assignment takes the team's next round-robin turn."""
    decision = route(config.routing, traits=traits, policy=policy, turn=0)
    if decision.team is None:
        return decision
    turn = await store.next_turn(uow.conn, decision.team)
    return route(config.routing, traits=traits, policy=policy, turn=turn)


async def open_handoff(
    uow: UnitOfWork,
    config: HandoffConfig,
    *,
    lead_id: str,
    mql: MqlReached,
    mql_at: datetime,
    handed_off_at: datetime,
) -> None:
    """Open the lead's handoff for this cycle: routed to an owner, with its SLA deadline and timers."""
    if await store.handoff_of(uow.conn, lead_id=lead_id, cycle=mql.cycle) is not None:
        return  # a redelivered MQL: routing must not take another turn
    policy = sla.choose_policy(config.sla, recent_events=mql.recent_events, mql_at=mql_at)
    owner = await assign(uow, config, traits=mql.traits, policy=policy.name)
    due = sla.decide_by(policy, handed_off_at, calendar=config.calendar_of_team(owner.team))
    handoff_id = str(uuid.uuid4())
    inserted = await store.insert_handoff(
        uow.conn,
        handoff_id=handoff_id,
        lead_id=lead_id,
        cycle=mql.cycle,
        stage=Stage.MQL.value,
        owner=owner.owner,
        team=owner.team,
        policy=policy.name,
        decide_by=due,
        score=mql.score,
        grade=mql.grade,
        explanation=[c.model_dump() for c in mql.explanation],
        lead={"email": mql.email, "traits": mql.traits},
        channel=mql.channel,
        campaign=mql.campaign,
    )
    if not inserted:
        return
    await store.record(uow.conn, handoff_id=handoff_id, actor="leadflow", action="create", to_stage=Stage.MQL)
    await schedule_sla(
        uow, config, handoff_id, policy=policy, stage=Stage.MQL, start=handed_off_at, due=due, team=owner.team
    )
    created = HandoffCreated(
        handoff_id=handoff_id,
        cycle=mql.cycle,
        owner=owner.owner,
        policy=policy.name,
        decide_by=due,
        channel=mql.channel,
        campaign=mql.campaign,
        score=mql.score,
        grade=mql.grade,
        team=owner.team,
        source=mql.source,
        mql_at=mql_at,
        explanation=mql.explanation,
    )
    uow.emit(created, lead_id=lead_id, occurred_at=handed_off_at)


async def schedule_sla(
    uow: UnitOfWork,
    config: HandoffConfig,
    handoff_id: str,
    *,
    policy: sla.SlaPolicy,
    stage: Stage,
    start: datetime,
    due: datetime,
    team: str | None,
) -> None:
    """A warning at the policy's warning point and a breach at the deadline, each to fire once."""
    warn = sla.warning_at(policy, start, due, calendar=config.calendar_of_team(team))
    await store.schedule_timers(
        uow.conn,
        [
            {
                "handoff_id": handoff_id,
                "kind": "warning",
                "stage": stage.value,
                "due_at": warn,
                "deadline": due,
            },
            {
                "handoff_id": handoff_id,
                "kind": "breach",
                "stage": stage.value,
                "due_at": due,
                "deadline": due,
            },
        ],
    )


async def decide(
    uow: UnitOfWork,
    config: HandoffConfig,
    handoff_id: str,
    decision: Decision,
    *,
    expected_version: int | None = None,
    owners: tuple[str, ...] | None = None,
) -> Any:
    """Apply a sales decision: check version, transition and reason; record it; move the SLA timers; emit.

    `owners`, when given, are the only owners whose handoffs the caller may act on.
    """
    row = await store.get(uow.conn, handoff_id, lock=True)
    if row is None or (owners is not None and row.owner not in owners):
        raise HandoffNotFound(handoff_id)
    if expected_version is not None and row.version != expected_version:
        raise StaleVersion(row.version)
    current = Stage(row.stage)
    target = next_stage(current, decision.action)
    reason = check_reason(decision.action, decision.reason, decision.note) or decision.reason
    now = utcnow()
    due = row.decide_by if current is Stage.MQL else row.qualify_by
    step = store.Transition(
        handoff_id=handoff_id,
        at=now,
        actor=decision.actor,
        action=decision.action.value,
        from_stage=current.value,
        to_stage=target.value,
        reason=reason,
        note=decision.note,
    )
    if decision.action is Action.ACCEPT:  # the SAL stage's clock starts: qualify or return by then
        policy = config.policy_named(row.policy)
        calendar = config.calendar_of_team(row.team)
        qualify_by = sla.qualify_by(policy, now, calendar=calendar)
        warn_at = sla.warning_at(policy, now, qualify_by, calendar=calendar)
        step = replace(step, qualify_by=qualify_by, warn_at=warn_at)
    event = EVENT_OF[decision.action](
        handoff_id=handoff_id,
        cycle=row.cycle,
        from_stage=current.value,
        to_stage=target.value,
        actor=decision.actor,
        owner=row.owner,
        policy=row.policy,
        in_time=due is None or now <= due,
        reason=reason,
        note=decision.note,
        channel=row.channel,
        campaign=row.campaign,
        team=row.team,
        **_details(decision),
    )
    uow.emit(event, lead_id=row.lead_id, occurred_at=now)
    [message] = uow.take_pending()  # the event alone: the decision's statement writes it
    # Timers of the stage left cancelled, the next stage's scheduled, history, event, new version:
    # one statement.
    return await store.transition(uow.conn, step, message)


async def reassign(
    uow: UnitOfWork,
    handoff_id: str,
    *,
    to_owner: str,
    actor: str,
    reason: str | None,
    expected_version: int | None = None,
) -> Any:
    """Give the handoff to another owner or queue; the history and `handoff.reassigned` say who and why."""
    row = await store.get(uow.conn, handoff_id, lock=True)
    if row is None:
        raise HandoffNotFound(handoff_id)
    if expected_version is not None and row.version != expected_version:
        raise StaleVersion(row.version)
    if row.owner == to_owner:
        return row
    now = utcnow()
    changed = await store.change(uow.conn, handoff_id, owner=to_owner)
    await store.record(
        uow.conn,
        handoff_id=handoff_id,
        at=now,
        actor=actor,
        action="reassign",
        from_stage=row.stage,
        to_stage=row.stage,
        reason=reason,
        note=f"{row.owner} → {to_owner}",
    )
    event = HandoffReassigned(handoff_id=handoff_id, from_owner=row.owner, to_owner=to_owner, reason=reason)
    uow.emit(event, lead_id=row.lead_id, occurred_at=now)
    return changed


def _details(decision: Decision) -> dict[str, Any]:
    if decision.action is Action.QUALIFY:
        return {"bant": dict(decision.details)}
    if decision.action is Action.OPPORTUNITY:
        return {"opportunity": dict(decision.details)}
    return {}
