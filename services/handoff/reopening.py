"""handoff's reopen use case: a manager undoes a return or disqualification.

The handoff is an MQL again for the same cycle, with a new decision deadline and its SLA
timers set due anew; `handoff.reopened` tells scoring to take the lead back from nurture.
"""

from __future__ import annotations

from typing import Any

from services.handoff import store
from services.handoff.domain import Decision, Handoff, HandoffConfig, Stage
from services.handoff.handlers import HandoffNotFound
from shared.envelope import utcnow
from shared.unit_of_work import UnitOfWork


async def reopen(
    uow: UnitOfWork,
    config: HandoffConfig,
    handoff_id: str,
    decision: Decision,
    *,
    expected_version: int | None = None,
) -> Any:
    """Reopen the handoff (refused once the lead has a later cycle's handoff); returns it as it is now."""
    row = await store.get(uow.conn, handoff_id, lock=True)
    if row is None:
        raise HandoffNotFound(handoff_id)
    handoff = Handoff.of(row)
    handoff.check_version(expected_version)
    superseded = await store.has_later_cycle(uow.conn, lead_id=handoff.lead_id, cycle=handoff.cycle)
    reopened = handoff.reopen(decision, config, now=utcnow(), superseded=superseded)
    step = reopened.transition
    changed = await store.change(
        uow.conn, handoff_id, stage=Stage.MQL.value, decide_by=reopened.decide_by, qualify_by=None
    )
    await store.record(
        uow.conn,
        handoff_id=handoff_id,
        at=step.at,
        actor=step.actor,
        action=step.action,
        from_stage=step.from_stage,
        to_stage=step.to_stage,
        reason=step.reason,
        note=step.note,
    )
    await store.rearm_timers(
        uow.conn, handoff_id, stage=Stage.MQL.value, warn_at=reopened.warn_at, deadline=reopened.decide_by
    )
    uow.emit(reopened.event, lead_id=handoff.lead_id, occurred_at=step.at)
    return changed
