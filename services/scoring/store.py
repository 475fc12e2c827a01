"""scoring's tables (schema `scoring`) and the queries on them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

SCHEMA = "scoring"
MIGRATIONS = Path(__file__).with_name("migrations")

metadata = MetaData()

leads = Table(
    "leads",
    metadata,
    Column("lead_id", Text, primary_key=True),
    Column("email", Text, unique=True, nullable=True),
    Column("stage", Text, nullable=False, server_default="nurture"),
    Column("cycle", Integer, nullable=False, server_default="1"),
    Column("score", Integer, nullable=False, server_default="0"),
    Column("fit_points", Integer, nullable=False, server_default="0"),
    Column("grade", Text, nullable=False, server_default="D"),
    Column("disqualified", Text, nullable=True),
    Column("explanation", JSONB, nullable=False, server_default="[]"),
    Column("traits", JSONB, nullable=False, server_default="{}"),
    Column("model_version", Text, nullable=True),
    Column("events_count", Integer, nullable=False, server_default="0"),
    Column("mql_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_leads_stage_score", "stage", "score"),
    schema=SCHEMA,
)

anonymous_ids = Table(
    "anonymous_ids",
    metadata,
    Column("anonymous_id", Text, primary_key=True),
    Column("lead_id", Text, ForeignKey(f"{SCHEMA}.leads.lead_id", ondelete="CASCADE"), nullable=False),
    schema=SCHEMA,
)

lead_events = Table(
    "lead_events",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("lead_id", Text, ForeignKey(f"{SCHEMA}.leads.lead_id", ondelete="CASCADE"), nullable=False),
    Column("type", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("properties", JSONB, nullable=False, server_default="{}"),
    Index("ix_lead_events_lead", "lead_id", "occurred_at"),
    schema=SCHEMA,
)


async def identities(
    conn: AsyncConnection, *, emails: set[str], anonymous: set[str]
) -> tuple[dict[str, str], dict[str, str], dict[str, str | None]]:
    """What is known of these emails and anonymous ids: lead of each email, lead of each
    anonymous id, and the email of every lead found. Locks the leads for this transaction."""
    lead_of_email: dict[str, str] = {}
    email_of_lead: dict[str, str | None] = {}
    if emails:
        rows = await conn.execute(
            select(leads.c.lead_id, leads.c.email).where(leads.c.email.in_(emails)).with_for_update()
        )
        for row in rows:
            lead_of_email[row.email] = row.lead_id
            email_of_lead[row.lead_id] = row.email
    lead_of_anonymous: dict[str, str] = {}
    if anonymous:
        rows = await conn.execute(
            select(anonymous_ids.c.anonymous_id, leads.c.lead_id, leads.c.email)
            .join(leads, anonymous_ids.c.lead_id == leads.c.lead_id)
            .where(anonymous_ids.c.anonymous_id.in_(sorted(anonymous)))
            .with_for_update(of=leads)
        )
        for row in rows:
            lead_of_anonymous[row.anonymous_id] = row.lead_id
            email_of_lead[row.lead_id] = row.email
    return lead_of_email, lead_of_anonymous, email_of_lead


async def apply_identity_changes(
    conn: AsyncConnection,
    *,
    create: dict[str, str | None],
    emails_learned: dict[str, str],
    merges: dict[str, str],
    links: dict[str, str],
) -> None:
    if create:
        await conn.execute(insert(leads).values([{"lead_id": k, "email": v} for k, v in create.items()]))
    for lead_id, email in emails_learned.items():
        await conn.execute(update(leads).where(leads.c.lead_id == lead_id).values(email=email))
    for absorbed, into in merges.items():
        await merge_leads(conn, into=into, absorbed=absorbed)
    if links:
        statement = insert(anonymous_ids).values(
            [{"anonymous_id": a, "lead_id": lead} for a, lead in links.items()]
        )
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=["anonymous_id"], set_={"lead_id": statement.excluded.lead_id}
            )
        )


async def merge_leads(conn: AsyncConnection, *, into: str, absorbed: str) -> None:
    """Move an anonymous lead's history onto the known lead, then drop it."""
    await conn.execute(update(lead_events).where(lead_events.c.lead_id == absorbed).values(lead_id=into))
    await conn.execute(update(anonymous_ids).where(anonymous_ids.c.lead_id == absorbed).values(lead_id=into))
    await conn.execute(leads.delete().where(leads.c.lead_id == absorbed))


async def add_events(conn: AsyncConnection, rows: list[dict[str, Any]]) -> set[str]:
    """Store events (event_id, lead_id, type, occurred_at, properties); returns the ids that were new."""
    if not rows:
        return set()
    result = await conn.execute(
        insert(lead_events)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(lead_events.c.event_id)
    )
    return {row.event_id for row in result}


async def lead_by_id(conn: AsyncConnection, lead_id: str, *, lock: bool = False) -> Row[Any] | None:
    query = select(leads).where(leads.c.lead_id == lead_id)
    return (await conn.execute(query.with_for_update() if lock else query)).first()


async def leads_by_ids(conn: AsyncConnection, lead_ids: list[str]) -> dict[str, Row[Any]]:
    query = select(leads).where(leads.c.lead_id.in_(lead_ids)).with_for_update()
    return {row.lead_id: row for row in await conn.execute(query)}


async def histories(conn: AsyncConnection, lead_ids: list[str]) -> dict[str, list[Any]]:
    query = (
        select(lead_events.c.lead_id, lead_events.c.type, lead_events.c.occurred_at, lead_events.c.properties)
        .where(lead_events.c.lead_id.in_(lead_ids))
        .order_by(lead_events.c.lead_id, lead_events.c.occurred_at)
    )
    found: dict[str, list[Any]] = {lead_id: [] for lead_id in lead_ids}
    for row in await conn.execute(query):
        found[row.lead_id].append(row)
    return found


async def update_lead(conn: AsyncConnection, lead_id: str, **values: Any) -> None:
    await conn.execute(
        update(leads).where(leads.c.lead_id == lead_id).values(updated_at=func.now(), **values)
    )


async def update_leads(conn: AsyncConnection, changes: list[dict[str, Any]]) -> None:
    """Apply many leads' new scores at once (each dict: lead_id plus the same set of columns)."""
    if not changes:
        return
    columns = [name for name in changes[0] if name != "lead_id"]
    statement = (
        update(leads)
        .where(leads.c.lead_id == bindparam("_lead_id"))
        .values(
            updated_at=func.now(),
            **{name: bindparam(f"_{name}", type_=leads.c[name].type) for name in columns},
        )
    )
    await conn.execute(statement, [{f"_{k}": v for k, v in change.items()} for change in changes])


async def find_leads(conn: AsyncConnection, *, email: str | None, limit: int) -> Sequence[Row[Any]]:
    query = select(leads).order_by(leads.c.updated_at.desc()).limit(limit)
    if email is not None:
        query = query.where(leads.c.email == email)
    return (await conn.execute(query)).all()
