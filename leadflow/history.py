"""A generated event history in scoring's tables, for the backtest benchmark.

Leads follow the demo personas (good-fit buyers, students, procurement, tire
kickers...) spread over the last 85 days; some of the leads sales would have
seen get a handoff outcome, so backtests have return rates to compare.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson

from leadflow.devstack.demo_traffic import persona_journey, pick_persona

SENT_BACK_SHARE = {"good_fit_buyer": 0.08, "partner_referral": 0.05, "procurement": 0.5, "student": 0.9}


async def seed_history(dsn: str, *, events: int, seed: int = 7) -> tuple[int, int]:
    """Write about `events` events (and their leads and outcomes); returns (leads, events) written."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    lead_rows: list[tuple[str, str | None, str]] = []
    event_rows: list[tuple[str, str, str, datetime, str]] = []
    outcome_rows: list[tuple[str, int, str, datetime]] = []
    emails: set[str] = set()
    while len(event_rows) < events:
        persona = pick_persona(rng)
        journey = persona_journey(rng, persona, now - timedelta(minutes=rng.randrange(0, 85 * 24 * 60)))
        lead_id = str(uuid.uuid4())
        email = next((e["email"].strip().lower() for e in journey if e.get("email")), None)
        if email in emails:  # the personas' name lists repeat; keep one lead per email
            local, _, domain = email.partition("@")
            email = f"{local}+{len(emails)}@{domain}"
        if email:
            emails.add(email)
        traits: dict[str, object] = {}
        for e in journey:
            traits.update(e.get("traits") or {})
            event_rows.append(
                (
                    e["event_id"] + lead_id[:8],
                    lead_id,
                    e["type"],
                    datetime.fromisoformat(e["occurred_at"]),
                    orjson.dumps(e.get("properties") or {}).decode(),
                )
            )
        lead_rows.append((lead_id, email, orjson.dumps(traits).decode()))
        if persona in SENT_BACK_SHARE and rng.random() < 0.7:
            outcome = "sent_back" if rng.random() < SENT_BACK_SHARE[persona] else "accepted"
            outcome_rows.append((lead_id, 1, outcome, now))
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "leads", schema_name="scoring", records=lead_rows, columns=["lead_id", "email", "traits"]
        )
        await conn.copy_records_to_table(
            "lead_events",
            schema_name="scoring",
            records=event_rows,
            columns=["event_id", "lead_id", "type", "occurred_at", "properties"],
        )
        await conn.copy_records_to_table(
            "handoff_outcomes",
            schema_name="scoring",
            records=outcome_rows,
            columns=["lead_id", "cycle", "outcome", "at"],
        )
        await conn.execute("ANALYZE scoring.lead_events")
    finally:
        await conn.close()
    return len(lead_rows), len(event_rows)
