"""Rows the bench writes straight into the services' tables: a busy team's handoff queue, and an
85-day event history for the backtest.

Written with COPY (a million rows in seconds), but through the services' own table
definitions: the table, schema and column names come from their `Table` objects,
so a renamed column fails here at once instead of seeding the wrong thing.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
from sqlalchemy import Column

from leadflow.devstack.demo_traffic import persona_journey, pick_persona
from services.handoff import store as handoff_store
from services.scoring import store as scoring_store
from shared.envelope import utcnow

SENT_BACK_SHARE = {"good_fit_buyer": 0.08, "partner_referral": 0.05, "procurement": 0.5, "student": 0.9}

_handoffs = handoff_store.handoffs.c
HANDOFF_COLUMNS = (
    _handoffs.handoff_id,
    _handoffs.lead_id,
    _handoffs.cycle,
    _handoffs.stage,
    _handoffs.owner,
    _handoffs.policy,
    _handoffs.decide_by,
    _handoffs.score,
    _handoffs.grade,
    _handoffs.explanation,
    _handoffs.lead,
)
_timers = handoff_store.sla_timers.c
TIMER_COLUMNS = (_timers.handoff_id, _timers.kind, _timers.stage, _timers.due_at, _timers.deadline)
_leads = scoring_store.leads.c
LEAD_COLUMNS = (_leads.lead_id, _leads.email, _leads.traits)
_events = scoring_store.lead_events.c
EVENT_COLUMNS = (_events.event_id, _events.lead_id, _events.type, _events.occurred_at, _events.properties)
_outcomes = scoring_store.handoff_outcomes.c
OUTCOME_COLUMNS = (_outcomes.lead_id, _outcomes.cycle, _outcomes.outcome, _outcomes.at)


async def copy_records(
    conn: asyncpg.Connection, columns: Sequence[Column[Any]], records: Iterable[tuple[Any, ...]]
) -> None:
    """COPY `records` (tuples in the order of `columns`) into the table those columns belong to."""
    table = columns[0].table
    if any(c.table is not table for c in columns):
        raise ValueError(f"columns of several tables: {[str(c) for c in columns]}")
    await conn.copy_records_to_table(
        table.name, schema_name=table.schema, columns=[c.name for c in columns], records=records
    )


async def seed_handoffs(db_dsn: str, count: int) -> list[str]:
    """Handoffs waiting for a decision, as the queue of a busy team would hold.

    Each with its two pending SLA timers (an accept cancels them), and the tables analyzed,
    as autovacuum would have done while such a queue built up.
    """
    ids = [str(uuid.uuid4()) for _ in range(count)]
    due = utcnow() + timedelta(hours=4)
    lead = orjson.dumps({"email": "ada@northwind.example", "traits": {"title": "VP of Marketing"}}).decode()
    explanation = orjson.dumps(
        [
            {
                "rule": "engagement.demo_request",
                "kind": "engagement",
                "points": 30.0,
                "detail": "1 × demo_request",
            }
        ]
    ).decode()
    handoffs = [
        (
            h,
            f"lead-{h}",
            1,
            "mql",
            "bench-rep",
            "standard",
            due + timedelta(seconds=i),
            60,
            "A",
            explanation,
            lead,
        )
        for i, h in enumerate(ids)
    ]
    timers = [
        (h, kind, "mql", at, due + timedelta(seconds=i))
        for i, h in enumerate(ids)
        for kind, at in (
            ("warning", due + timedelta(seconds=i) - timedelta(hours=1)),
            ("breach", due + timedelta(seconds=i)),
        )
    ]
    conn = await asyncpg.connect(db_dsn)
    try:
        await copy_records(conn, HANDOFF_COLUMNS, handoffs)
        await copy_records(conn, TIMER_COLUMNS, timers)
        await conn.execute(f"ANALYZE {handoff_store.handoffs.fullname}, {handoff_store.sla_timers.fullname}")
    finally:
        await conn.close()
    return ids


async def seed_history(dsn: str, *, events: int, seed: int = 7) -> tuple[int, int]:
    """Write about `events` events (and their leads and outcomes) into scoring's tables; returns
    (leads, events) written.

    Leads follow the demo personas (good-fit buyers, students, procurement, tire
    kickers...) spread over the last 85 days; some of the leads sales would have
    seen get a handoff outcome, so backtests have return rates to compare.
    """
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
        await copy_records(conn, LEAD_COLUMNS, lead_rows)
        await copy_records(conn, EVENT_COLUMNS, event_rows)
        await copy_records(conn, OUTCOME_COLUMNS, outcome_rows)
        await conn.execute(f"ANALYZE {scoring_store.lead_events.fullname}")
    finally:
        await conn.close()
    return len(lead_rows), len(event_rows)
