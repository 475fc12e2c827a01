"""handoff's tables (schema `handoff`) and the queries on them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.outbox import inbox_table, outbox_table

SCHEMA = "handoff"
MIGRATIONS = Path(__file__).with_name("migrations")

metadata = MetaData()

handoffs = Table(
    "handoffs",
    metadata,
    Column("handoff_id", Text, primary_key=True),
    Column("lead_id", Text, nullable=False),
    Column("cycle", Integer, nullable=False),
    Column("stage", Text, nullable=False),
    Column("owner", Text, nullable=False),
    Column("policy", Text, nullable=False),
    Column("decide_by", DateTime(timezone=True), nullable=False),
    Column("qualify_by", DateTime(timezone=True), nullable=True),
    Column("score", Integer, nullable=False),
    Column("grade", Text, nullable=False),
    Column("explanation", JSONB, nullable=False),
    Column("lead", JSONB, nullable=False, comment="email and traits at MQL time"),
    Column("channel", Text, nullable=True),
    Column("campaign", Text, nullable=True),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("lead_id", "cycle", name="uq_handoffs_lead_cycle"),
    Index("ix_handoffs_stage_decide_by", "stage", "decide_by"),
    schema=SCHEMA,
)

history = Table(
    "handoff_history",
    metadata,
    Column("seq", BigInteger, Identity(), primary_key=True),
    Column("handoff_id", Text, nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("from_stage", Text, nullable=True),
    Column("to_stage", Text, nullable=False),
    Column("reason", Text, nullable=True),
    Column("note", Text, nullable=True),
    schema=SCHEMA,
)


outbox = outbox_table(metadata, SCHEMA)
inbox = inbox_table(metadata, SCHEMA)


async def insert_handoff(conn: AsyncConnection, **values: Any) -> bool:
    """False when this lead's cycle already has a handoff (a redelivered MQL)."""
    result = await conn.execute(
        insert(handoffs)
        .values(**values)
        .on_conflict_do_nothing(constraint="uq_handoffs_lead_cycle")
        .returning(handoffs.c.handoff_id)
    )
    return result.first() is not None


async def get(conn: AsyncConnection, handoff_id: str, *, lock: bool = False) -> Row[Any] | None:
    query = select(handoffs).where(handoffs.c.handoff_id == handoff_id)
    return (await conn.execute(query.with_for_update() if lock else query)).first()


async def queue(
    conn: AsyncConnection, *, stage: str | None, owner: str | None, limit: int
) -> Sequence[Row[Any]]:
    query = select(handoffs).order_by(handoffs.c.decide_by, handoffs.c.handoff_id).limit(limit)
    if stage is not None:
        query = query.where(handoffs.c.stage == stage)
    if owner is not None:
        query = query.where(handoffs.c.owner == owner)
    return (await conn.execute(query)).all()


async def change(conn: AsyncConnection, handoff_id: str, **values: Any) -> None:
    await conn.execute(
        update(handoffs)
        .where(handoffs.c.handoff_id == handoff_id)
        .values(version=handoffs.c.version + 1, updated_at=func.now(), **values)
    )


async def record(conn: AsyncConnection, **values: Any) -> None:
    await conn.execute(history.insert().values(**values))


async def history_of(conn: AsyncConnection, handoff_id: str) -> Sequence[Row[Any]]:
    query = select(history).where(history.c.handoff_id == handoff_id).order_by(history.c.seq)
    return (await conn.execute(query)).all()
