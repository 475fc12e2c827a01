"""feedback's part of an erasure: facts keep what the figures need, with no identity.

A fact's only link to a person is its lead id; an erasure replaces it with a random one (per
lead, so a lead's cycles stay together), so return rates, funnels and cohorts count exactly as
before. A rebuild re-reads the erasure from `lead.lifecycle` after the lead's other events (it
is keyed by the lead, so in the same partition) and anonymises the rebuilt facts again.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.feedback.store import SCHEMA, alerts, fact_rules, handoff_facts, inbox, outbox, sla_breaches

ERASED_PREFIX = "erased:"

ERASURE_PLAN: dict[str, str] = {
    handoff_facts.fullname: "lead_id replaced by a random id; stages, times, owner, reason kept",
    fact_rules.fullname: "kept: handoff id and scoring rule",
    sla_breaches.fullname: "kept: handoff id, stage, owner, deadlines",
    alerts.fullname: "kept: group figures (a breach alert names a handoff id, never a person)",
    outbox.fullname: "kept: alerts only, which carry no lead",
    inbox.fullname: "kept: message ids and topics only",
    f"{SCHEMA}.failed_events": "kept: samples redacted by intake (no identity, trait or email-like text)",
    f"{SCHEMA}.webhook_subscriptions": "kept: subscribers of alerts",
    f"{SCHEMA}.webhook_deliveries": "kept: alert payloads, which carry no lead",
}


async def anonymise_leads(conn: AsyncConnection, lead_ids: Iterable[str]) -> None:
    for lead_id in set(lead_ids):
        await conn.execute(
            update(handoff_facts)
            .where(handoff_facts.c.lead_id == lead_id)
            .values(lead_id=f"{ERASED_PREFIX}{uuid.uuid4()}")
        )
