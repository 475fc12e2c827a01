"""handoff's part of an erasure: keep each handoff's stages and times, drop who it was about.

On `privacy.erasure_requested` for a lead: its handoffs lose the lead's profile (email, traits)
and their lead id (replaced by a random one), their history loses the sales notes, webhook
deliveries of its events lose their payloads (pending ones are dropped), remembered API answers
naming it and unsent outbox rows keyed by it are deleted. Then every active webhook subscriber
gets `lead.erased` with the lead id (they must erase too), and scoring gets the confirmation.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Text, cast, delete, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.handoff.store import (
    handoffs,
    history,
    idempotency_keys,
    inbox,
    outbox,
    routing_turns,
    sla_timers,
    webhooks,
)
from shared.envelope import Envelope, utcnow
from shared.events import ErasureConfirmed, ErasureRequested, LeadErased
from shared.unit_of_work import UnitOfWork

ERASED_PREFIX = "erased:"
ERASED_PAYLOAD = b'{"erased":true}'

ERASURE_PLAN: dict[str, str] = {
    handoffs.fullname: "lead profile emptied, lead_id replaced by a random id; stage, owner and times kept",
    history.fullname: "sales notes removed; actions, stages and times kept",
    sla_timers.fullname: "kept: handoff id and deadlines",
    idempotency_keys.fullname: "remembered answers naming the lead deleted",
    routing_turns.fullname: "kept: a counter per team",
    webhooks.subscriptions.fullname: "kept: the subscribers",
    webhooks.deliveries.fullname: "payloads of the lead's events blanked; pending ones dropped",
    outbox.fullname: "the lead's unsent rows deleted (keyed by lead id)",
    inbox.fullname: "kept: message ids and topics only",
}


async def erase_lead(uow: UnitOfWork, envelope: Envelope, event: ErasureRequested) -> None:
    """Anonymise the lead's handoffs, tell the subscribers, confirm to scoring."""
    lead_id = envelope.lead_id
    if not lead_id:
        return
    await anonymise(uow.conn, lead_id)
    uow.emit(LeadErased(erased_at=utcnow()), lead_id=lead_id)
    uow.emit(ErasureConfirmed(request_id=event.request_id, service="handoff"), lead_id=lead_id)


async def anonymise(conn: AsyncConnection, lead_id: str) -> None:
    ids = (
        (await conn.execute(select(handoffs.c.handoff_id).where(handoffs.c.lead_id == lead_id)))
        .scalars()
        .all()
    )
    if ids:
        await conn.execute(update(history).where(history.c.handoff_id.in_(ids)).values(note=None))
        await conn.execute(
            update(handoffs)
            .where(handoffs.c.handoff_id.in_(ids))
            .values(lead={}, lead_id=f"{ERASED_PREFIX}{uuid.uuid4()}")
        )
    needle = literal(lead_id.encode())
    deliveries = webhooks.deliveries
    naming = deliveries.c.payload.contains(needle)
    await conn.execute(
        update(deliveries)
        .where(naming, deliveries.c.status == "pending")
        .values(status="dropped", last_error="erased")
    )
    await conn.execute(update(deliveries).where(naming).values(payload=ERASED_PAYLOAD))
    await conn.execute(delete(idempotency_keys).where(cast(idempotency_keys.c.body, Text).contains(lead_id)))
    await conn.execute(delete(outbox).where(outbox.c.key == lead_id.encode()))
