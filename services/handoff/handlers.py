"""handoff's use cases: open a handoff for each MQL; apply a sales decision.

Both run in one transaction with the events they cause (outbox).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.handoff import sla, store
from services.handoff.domain import Action, Stage, check_reason, next_stage
from shared.consumer import Handler
from shared.envelope import Envelope, utcnow
from shared.events import (
    HandoffCreated,
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


class HandoffNotFound(LookupError):
    pass


@dataclass(frozen=True)
class Decision:
    action: Action
    actor: str
    reason: str | None = None
    note: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)  # BANT or opportunity fields


def make_handlers(config: sla.SlaConfig) -> Mapping[str, Handler]:
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

    return {"lead.mql_reached": on_mql}


async def open_handoff(
    uow: UnitOfWork,
    config: sla.SlaConfig,
    *,
    lead_id: str,
    mql: MqlReached,
    mql_at: datetime,
    handed_off_at: datetime,
) -> None:
    """Open the lead's handoff for this cycle, owned by the queue, with its SLA deadline."""
    policy = sla.choose_policy(config, recent_events=mql.recent_events, mql_at=mql_at)
    handoff_id = str(uuid.uuid4())
    due = sla.decide_by(policy, handed_off_at)
    values: dict[str, Any] = dict(
        handoff_id=handoff_id,
        lead_id=lead_id,
        cycle=mql.cycle,
        stage=Stage.MQL.value,
        owner=config.default_owner,
        policy=policy.name,
        decide_by=due,
        score=mql.score,
        grade=mql.grade,
        explanation=[c.model_dump() for c in mql.explanation],
        lead={"email": mql.email, "traits": mql.traits},
        channel=mql.channel,
        campaign=mql.campaign,
    )
    if not await store.insert_handoff(uow.conn, **values):
        return
    await store.record(uow.conn, handoff_id=handoff_id, actor="leadflow", action="create", to_stage=Stage.MQL)
    created = HandoffCreated(
        handoff_id=handoff_id,
        cycle=mql.cycle,
        owner=config.default_owner,
        policy=policy.name,
        decide_by=due,
        channel=mql.channel,
        campaign=mql.campaign,
        score=mql.score,
        grade=mql.grade,
    )
    uow.emit(created, lead_id=lead_id, occurred_at=handed_off_at)


async def decide(uow: UnitOfWork, config: sla.SlaConfig, handoff_id: str, decision: Decision) -> Any:
    """Apply a sales decision: check the transition and reason, record it, emit its event."""
    row = await store.get(uow.conn, handoff_id, lock=True)
    if row is None:
        raise HandoffNotFound(handoff_id)
    current = Stage(row.stage)
    target = next_stage(current, decision.action)
    reason = check_reason(decision.action, decision.reason, decision.note) or decision.reason
    now = utcnow()
    due = row.decide_by if current is Stage.MQL else row.qualify_by
    changes: dict[str, Any] = {"stage": target.value}
    if decision.action is Action.ACCEPT:
        changes["qualify_by"] = sla.qualify_by(_policy_named(config, row.policy), now)
    await store.change(uow.conn, handoff_id, **changes)
    await store.record(
        uow.conn,
        handoff_id=handoff_id,
        at=now,
        actor=decision.actor,
        action=decision.action.value,
        from_stage=current.value,
        to_stage=target.value,
        reason=reason,
        note=decision.note,
    )
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
        **_details(decision),
    )
    uow.emit(event, lead_id=row.lead_id, occurred_at=now)
    return await store.get(uow.conn, handoff_id)


def _policy_named(config: sla.SlaConfig, name: str) -> sla.SlaPolicy:
    """The handoff's policy; the fallback if the config no longer has it."""
    return next((p for p in config.policies if p.name == name), config.fallback)


def _details(decision: Decision) -> dict[str, Any]:
    if decision.action is Action.QUALIFY:
        return {"bant": dict(decision.details)}
    if decision.action is Action.OPPORTUNITY:
        return {"opportunity": dict(decision.details)}
    return {}
