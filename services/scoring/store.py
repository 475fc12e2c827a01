"""scoring's tables (schema `scoring`) and the queries on them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
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


async def lead_by_email(conn: AsyncConnection, email: str) -> Row[Any] | None:
    return (await conn.execute(select(leads).where(leads.c.email == email).with_for_update())).first()


async def lead_by_id(conn: AsyncConnection, lead_id: str, *, lock: bool = False) -> Row[Any] | None:
    query = select(leads).where(leads.c.lead_id == lead_id)
    return (await conn.execute(query.with_for_update() if lock else query)).first()


async def lead_of_anonymous(conn: AsyncConnection, anonymous_id: str) -> Row[Any] | None:
    query = (
        select(leads)
        .join(anonymous_ids, anonymous_ids.c.lead_id == leads.c.lead_id)
        .where(anonymous_ids.c.anonymous_id == anonymous_id)
        .with_for_update(of=leads)
    )
    return (await conn.execute(query)).first()


async def insert_lead(conn: AsyncConnection, *, lead_id: str, email: str | None) -> None:
    await conn.execute(insert(leads).values(lead_id=lead_id, email=email))


async def link_anonymous(conn: AsyncConnection, *, anonymous_id: str, lead_id: str) -> None:
    await conn.execute(
        insert(anonymous_ids)
        .values(anonymous_id=anonymous_id, lead_id=lead_id)
        .on_conflict_do_update(index_elements=["anonymous_id"], set_={"lead_id": lead_id})
    )


async def merge_leads(conn: AsyncConnection, *, into: str, absorbed: str) -> None:
    """Move an anonymous lead's history onto the known lead, then drop it."""
    await conn.execute(update(lead_events).where(lead_events.c.lead_id == absorbed).values(lead_id=into))
    await conn.execute(update(anonymous_ids).where(anonymous_ids.c.lead_id == absorbed).values(lead_id=into))
    await conn.execute(leads.delete().where(leads.c.lead_id == absorbed))


async def set_email(conn: AsyncConnection, *, lead_id: str, email: str) -> None:
    await conn.execute(update(leads).where(leads.c.lead_id == lead_id).values(email=email))


async def add_event(
    conn: AsyncConnection,
    *,
    event_id: str,
    lead_id: str,
    type: str,
    occurred_at: datetime,
    properties: dict[str, Any],
) -> bool:
    result = await conn.execute(
        insert(lead_events)
        .values(event_id=event_id, lead_id=lead_id, type=type, occurred_at=occurred_at, properties=properties)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(lead_events.c.event_id)
    )
    return result.first() is not None


async def events_of(conn: AsyncConnection, lead_id: str) -> Sequence[Row[Any]]:
    query = select(lead_events).where(lead_events.c.lead_id == lead_id).order_by(lead_events.c.occurred_at)
    return (await conn.execute(query)).all()


async def update_lead(conn: AsyncConnection, lead_id: str, **values: Any) -> None:
    await conn.execute(
        update(leads).where(leads.c.lead_id == lead_id).values(updated_at=func.now(), **values)
    )


async def find_leads(conn: AsyncConnection, *, email: str | None, limit: int) -> Sequence[Row[Any]]:
    query = select(leads).order_by(leads.c.updated_at.desc()).limit(limit)
    if email is not None:
        query = query.where(leads.c.email == email)
    return (await conn.execute(query)).all()
