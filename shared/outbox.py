"""Transactional outbox and inbox: how a service changes state and tells the bus.

A handler writes the events it causes into its service's `outbox` table inside
the same transaction as the state change; `OutboxRelay` publishes committed
rows to Kafka and deletes them. A crash between commit and publish only delays
the events; a crash between publish and delete repeats them, which the
consumers' inbox (keyed by envelope id) absorbs.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    LargeBinary,
    MetaData,
    Table,
    Text,
    bindparam,
    delete,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.db import among
from shared.envelope import Envelope
from shared.logging import get_logger
from shared.metrics import OUTBOX_PUBLISHED

log = get_logger(__name__)
COALESCE_S = 0.005


def outbox_table(metadata: MetaData, schema: str) -> Table:
    return Table(
        "outbox",
        metadata,
        Column("seq", BigInteger, Identity(), primary_key=True),
        Column("message_id", Text, nullable=False, unique=True),
        Column("topic", Text, nullable=False),
        Column("key", LargeBinary, nullable=True),
        Column("payload", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        schema=schema,
    )


def inbox_table(metadata: MetaData, schema: str) -> Table:
    return Table(
        "inbox",
        metadata,
        Column("message_id", Text, primary_key=True),
        Column("topic", Text, nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Index(None, "processed_at"),
        schema=schema,
    )


def outbox_row(envelope: Envelope, topic: str, key: str | None) -> dict[str, Any]:
    """An event as the outbox stores it (message_id, topic, key, payload)."""
    return {
        "message_id": envelope.id,
        "topic": topic,
        "key": key.encode() if key is not None else None,
        "payload": envelope.to_bytes(),
    }


async def add_to_outbox(
    conn: AsyncConnection, outbox: Table, events: list[tuple[Envelope, str, str | None]]
) -> None:
    """Write (envelope, topic, key) rows in one statement, in order."""
    rows = [outbox_row(envelope, topic, key) for envelope, topic, key in events]
    await conn.execute(insert(outbox).on_conflict_do_nothing(index_elements=["message_id"]), rows)


async def record_deliveries(conn: AsyncConnection, inbox: Table, messages: list[tuple[str, str]]) -> set[str]:
    """Record (message id, topic) pairs as processed; returns the ids not seen before."""
    topics = dict(messages)
    # From two arrays, not a row of parameters per message: one statement text whatever the
    # batch's size (a multi-row VALUES is a text, and a Postgres prepare, per size).
    arriving = (
        func.unnest(
            bindparam("message_ids", list(topics), type_=ARRAY(inbox.c.message_id.type)),
            bindparam("topics", list(topics.values()), type_=ARRAY(inbox.c.topic.type)),
        )
        .table_valued("message_id", "topic")
        .render_derived(with_types=False)
    )
    statement = (
        insert(inbox)
        .from_select(["message_id", "topic"], select(arriving.c.message_id, arriving.c.topic))
        .on_conflict_do_nothing(index_elements=["message_id"])
        .returning(inbox.c.message_id)
    )
    return {row.message_id for row in await conn.execute(statement)}


class OutboxRelay:
    """Publishes committed outbox rows in order; safe with several instances.

    Rows are claimed with `FOR UPDATE SKIP LOCKED`, so two relays never publish
    the same row at the same time.
    """

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        outbox: Table,
        producer: AIOKafkaProducer,
        batch_size: int,
        idle_poll_s: float,
    ) -> None:
        self._engine = engine
        self._outbox = outbox
        self._producer = producer
        self._batch_size = batch_size
        self._idle_poll_s = idle_poll_s
        self._wake = asyncio.Event()
        self.last_published_at: datetime | None = None

    def wake(self) -> None:
        """Called after a commit that wrote to the outbox, so events go out at once."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                published = await self.publish_once()
            except Exception as exc:  # the relay must outlive Kafka and Postgres outages
                log.warning("outbox_publish_failed", error=str(exc), error_type=type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            if published < self._batch_size:
                await self._sleep_until_woken(stop)

    async def _sleep_until_woken(self, stop: asyncio.Event) -> None:
        self._wake.clear()
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        _, pending = await asyncio.wait(
            waiters, timeout=self._idle_poll_s, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()
        # Let the commits of a burst land before publishing: one claim then covers many
        # rows instead of one claim-publish-delete round per committed request.
        await asyncio.sleep(COALESCE_S)

    async def publish_once(self) -> int:
        t = self._outbox
        async with self._engine.begin() as conn:
            rows = (
                await conn.execute(
                    select(t.c.seq, t.c.topic, t.c.key, t.c.payload)
                    .order_by(t.c.seq)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            sends = [await self._producer.send(row.topic, value=row.payload, key=row.key) for row in rows]
            await asyncio.gather(*sends)
            await conn.execute(delete(t).where(among(t.c.seq, [row.seq for row in rows])))
        OUTBOX_PUBLISHED.inc(len(rows))
        return len(rows)
