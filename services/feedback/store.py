"""feedback's tables (schema `feedback`): one fact row per handoff, and alerts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    and_,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.outbox import inbox_table, outbox_table

SCHEMA = "feedback"
MIGRATIONS = Path(__file__).with_name("migrations")

metadata = MetaData()

handoff_facts = Table(
    "handoff_facts",
    metadata,
    Column("handoff_id", Text, primary_key=True),
    Column("lead_id", Text, nullable=False),
    Column("cycle", Integer, nullable=True),
    Column("owner", Text, nullable=True),
    Column("policy", Text, nullable=True),
    Column("channel", Text, nullable=True),
    Column("campaign", Text, nullable=True),
    Column("grade", Text, nullable=True),
    Column("score", Integer, nullable=True),
    Column("handed_off_at", DateTime(timezone=True), nullable=True),
    Column("decision", Text, nullable=True, comment="accepted | rejected"),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("decided_in_time", Boolean, nullable=True),
    Column("sent_back", Text, nullable=True, comment="rejected | returned"),
    Column("sent_back_at", DateTime(timezone=True), nullable=True),
    Column("reason", Text, nullable=True),
    Column("sql_at", DateTime(timezone=True), nullable=True),
    Column("sqo_at", DateTime(timezone=True), nullable=True),
    Column("disqualified_at", DateTime(timezone=True), nullable=True),
    Index("ix_handoff_facts_decided_at", "decided_at"),
    schema=SCHEMA,
)

alerts = Table(
    "alerts",
    metadata,
    Column("alert_id", Text, primary_key=True),
    Column("alert_key", Text, nullable=False),
    Column("status", Text, nullable=False, comment="open | resolved"),
    Column("severity", Text, nullable=True),
    Column("raised_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("figures", JSONB, nullable=False),
    Index(
        "uq_alerts_one_open_per_key",
        "alert_key",
        unique=True,
        postgresql_where=text("status = 'open'"),
    ),
    schema=SCHEMA,
)


outbox = outbox_table(metadata, SCHEMA)
inbox = inbox_table(metadata, SCHEMA)


async def upsert_fact(conn: AsyncConnection, handoff_id: str, lead_id: str, **values: Any) -> None:
    """Insert or update a handoff's facts; a value already set is never overwritten."""
    statement = insert(handoff_facts).values(handoff_id=handoff_id, lead_id=lead_id, **values)
    keep_first = {name: func.coalesce(handoff_facts.c[name], statement.excluded[name]) for name in values}
    await conn.execute(statement.on_conflict_do_update(index_elements=["handoff_id"], set_=keep_first))


async def decision_counts(conn: AsyncConnection, *, since: datetime) -> tuple[int, int]:
    """(sent back, decided) among handoffs whose first decision is at or after `since`."""
    f = handoff_facts
    row = (
        await conn.execute(
            select(
                func.count().filter(f.c.sent_back.is_not(None)),
                func.count(),
            ).where(and_(f.c.decided_at.is_not(None), f.c.decided_at >= since))
        )
    ).one()
    return int(row[0]), int(row[1])


async def open_alert(conn: AsyncConnection, alert_key: str) -> Row[Any] | None:
    query = select(alerts).where(alerts.c.alert_key == alert_key, alerts.c.status == "open")
    return (await conn.execute(query)).first()


async def raise_alert(conn: AsyncConnection, **values: Any) -> bool:
    """False when another instance already holds this key open."""
    result = await conn.execute(
        insert(alerts)
        .values(status="open", **values)
        .on_conflict_do_nothing(index_elements=["alert_key"], index_where=text("status = 'open'"))
        .returning(alerts.c.alert_id)
    )
    return result.first() is not None


async def resolve_alert(
    conn: AsyncConnection, alert_key: str, *, at: datetime, figures: dict[str, Any]
) -> bool:
    result = await conn.execute(
        update(alerts)
        .where(alerts.c.alert_key == alert_key, alerts.c.status == "open")
        .values(status="resolved", resolved_at=at, figures=figures)
        .returning(alerts.c.alert_id)
    )
    return result.first() is not None


async def list_alerts(conn: AsyncConnection, *, status: str | None, limit: int) -> Sequence[Row[Any]]:
    query = select(alerts).order_by(alerts.c.raised_at.desc()).limit(limit)
    if status is not None:
        query = query.where(alerts.c.status == status)
    return (await conn.execute(query)).all()
