"""handoff's use cases: open a handoff for each MQL, route it, and apply sales decisions.

Each runs in one transaction with the events it causes (outbox) and the SLA
timers it schedules or cancels.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from services.handoff import sla, store, webhooks
from services.handoff.assignments import assign
from services.handoff.domain import Decision, Handoff, HandoffConfig, Stage
from services.handoff.routing import LeadToRoute
from shared.consumer import BatchHandler, Handler
from shared.envelope import Envelope, utcnow
from shared.events import HandoffCreated, MqlReached
from shared.unit_of_work import UnitOfWork


class HandoffNotFound(LookupError):
    pass


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
    # Who is in and who is full is judged at the moment of the handoff (stable under redelivery).
    lead = LeadToRoute(traits=mql.traits, policy=policy.name, account=mql.account)
    owner = await assign(uow, config, lead, now=handed_off_at)
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
        account=mql.account.model_dump() if mql.account else None,
        routing_reason=owner.reason.value,
        routing_rule=owner.rule,
    )
    if not inserted:
        return
    await store.record(
        uow.conn,
        handoff_id=handoff_id,
        actor="leadflow",
        action="create",
        to_stage=Stage.MQL,
        reason=owner.reason.value,
        note=owner.note,
    )
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
        account=mql.account,
        routing_reason=owner.reason.value,
        routing_rule=owner.rule,
        routing_note=owner.note,
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
    """Apply a sales decision: check the version, let the handoff decide, record the move with
    its SLA timers and event in one statement. Returns the handoff as it is now.

    `owners`, when given, are the only owners whose handoffs the caller may act on.
    """
    row = await store.get(uow.conn, handoff_id, lock=True)
    if row is None or (owners is not None and row.owner not in owners):
        raise HandoffNotFound(handoff_id)
    handoff = Handoff.of(row)
    handoff.check_version(expected_version)
    decided = handoff.decide(decision, config, now=utcnow())
    uow.emit(decided.event, lead_id=handoff.lead_id, occurred_at=decided.transition.at)
    [message] = uow.take_pending()  # the event alone: the decision's statement writes it
    return await store.transition(uow.conn, decided.transition, message)


async def reassign(
    uow: UnitOfWork,
    config: HandoffConfig,
    handoff_id: str,
    *,
    to_owner: str,
    actor: str,
    reason: str | None,
    expected_version: int | None = None,
) -> Any:
    """Give the handoff to another owner or queue the config knows; the history and
    `handoff.reassigned` say who and why."""
    config.check_owner(to_owner)
    row = await store.get(uow.conn, handoff_id, lock=True)
    if row is None:
        raise HandoffNotFound(handoff_id)
    handoff = Handoff.of(row)
    handoff.check_version(expected_version)
    reassigned = handoff.reassign(to_owner, reason=reason)
    if reassigned is None:
        return row
    now = utcnow()
    changed = await store.change(uow.conn, handoff_id, owner=to_owner)
    await store.record(
        uow.conn,
        handoff_id=handoff_id,
        at=now,
        actor=actor,
        action="reassign",
        from_stage=handoff.stage,
        to_stage=handoff.stage,
        reason=reason,
        note=reassigned.note,
    )
    uow.emit(reassigned.event, lead_id=handoff.lead_id, occurred_at=now)
    return changed
