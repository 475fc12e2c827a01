"""Outbound webhooks any service can offer: subscriptions, and signed deliveries retried for a day.

Deliveries are rows: a service's consumer enqueues one per active subscriber for each event of
a subscribed type it sees on a topic (so a delivery exists only for an event that was committed
and published), and a loop (`shared.webhook_delivery`) posts the due ones, signed as Stripe
signs its webhooks (`shared.signing`), retrying with exponential backoff before marking them
failed. Rows are claimed with `FOR UPDATE SKIP LOCKED`, so several instances never post the
same delivery at once. A delivery stores the event's envelope; what is posted is rendered from
it at send time (handoff posts the envelope itself, feedback a Slack message).

Signing secrets are stored sealed (`shared.secret_box`); after a rotation the previous one is
kept, sealed too, until its grace period ends. A subscription's pending deliveries are capped:
beyond the cap the oldest are marked `dropped` (`trim_backlogs`).

A service defines the two tables on its own metadata and schema (`webhook_tables`), creates
them in migrations (`shared.migration_ops`), and wires `make_enqueue`,
`shared.webhook_delivery.make_delivery_loop` and `shared.webhook_api.webhook_router` with its
event types.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    delete,
    func,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.consumer import BatchHandler
from shared.envelope import Envelope
from shared.secret_box import PREFIX as SEALED_PREFIX
from shared.secret_box import SecretBox
from shared.unit_of_work import UnitOfWork

# --- tables and queries ----------------------------------------------------------------


@dataclass(frozen=True)
class WebhookTables:
    subscriptions: Table
    deliveries: Table


def webhook_tables(metadata: MetaData, schema: str) -> WebhookTables:
    """The subscription and delivery tables of `schema`, as `create_webhook_tables` makes them."""
    subscriptions = Table(
        "webhook_subscriptions",
        metadata,
        Column("subscription_id", Text, primary_key=True),
        Column("url", Text, nullable=False),
        Column("event_types", ARRAY(Text), nullable=False),
        Column("secret", Text, nullable=False),  # sealed: shared.secret_box
        Column("active", Boolean, nullable=False, server_default=true()),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("created_by", Text, nullable=True),  # the API key's id, for the cap per key
        Column("previous_secret", Text, nullable=True),  # sealed; signs too until it expires
        Column("previous_secret_expires_at", DateTime(timezone=True), nullable=True),
        schema=schema,
    )
    deliveries = Table(
        "webhook_deliveries",
        metadata,
        Column("delivery_id", BigInteger, Identity(), primary_key=True),
        Column("subscription_id", Text, nullable=False),
        Column("message_id", Text, nullable=False),
        Column("event_type", Text, nullable=False),
        Column("payload", LargeBinary, nullable=False),  # the event's envelope, as published
        Column("status", Text, nullable=False, server_default="pending"),  # pending|delivered|failed|dropped
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("last_status_code", Integer, nullable=True),
        Column("last_error", Text, nullable=True),  # a summary ("HTTP 500", "timeout"), never a body
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("delivered_at", DateTime(timezone=True), nullable=True),
        UniqueConstraint("subscription_id", "message_id", name="uq_webhook_deliveries_once"),
        Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
        Index("ix_webhook_deliveries_subscription", "subscription_id", "delivery_id"),
        schema=schema,
    )
    return WebhookTables(subscriptions, deliveries)


async def add_subscription(conn: AsyncConnection, tables: WebhookTables, **values: Any) -> Row[Any]:
    statement = tables.subscriptions.insert().values(**values).returning(*tables.subscriptions.c)
    row: Row[Any] = (await conn.execute(statement)).one()
    return row


async def subscriptions(conn: AsyncConnection, tables: WebhookTables) -> Sequence[Row[Any]]:
    subs = tables.subscriptions
    return (await conn.execute(select(subs).order_by(subs.c.created_at))).all()


async def subscription(conn: AsyncConnection, tables: WebhookTables, subscription_id: str) -> Row[Any] | None:
    subs = tables.subscriptions
    return (await conn.execute(select(subs).where(subs.c.subscription_id == subscription_id))).first()


async def subscriptions_created_by(conn: AsyncConnection, tables: WebhookTables, key_id: str) -> int:
    subs = tables.subscriptions
    counted = select(func.count()).select_from(subs).where(subs.c.created_by == key_id)
    return int((await conn.execute(counted)).scalar_one())


async def change_subscription(
    conn: AsyncConnection, tables: WebhookTables, subscription_id: str, **values: Any
) -> Row[Any] | None:
    """The subscription after setting `values` (pausing, resuming, a new secret); None if unknown."""
    subs = tables.subscriptions
    statement = (
        update(subs).where(subs.c.subscription_id == subscription_id).values(**values).returning(*subs.c)
    )
    return (await conn.execute(statement)).first()


async def delete_subscription(conn: AsyncConnection, tables: WebhookTables, subscription_id: str) -> bool:
    """Remove a subscription and its deliveries; False if there was none."""
    subs, deliveries = tables.subscriptions, tables.deliveries
    await conn.execute(delete(deliveries).where(deliveries.c.subscription_id == subscription_id))
    removed = await conn.execute(delete(subs).where(subs.c.subscription_id == subscription_id))
    return removed.rowcount > 0


async def seal_plain_secrets(conn: AsyncConnection, tables: WebhookTables, box: SecretBox) -> int:
    """Seal the secrets stored in plain text before secrets were sealed; how many were."""
    subs = tables.subscriptions
    plain = (
        await conn.execute(
            select(subs.c.subscription_id, subs.c.secret, subs.c.previous_secret)
            .where(
                ~subs.c.secret.startswith(SEALED_PREFIX) | ~subs.c.previous_secret.startswith(SEALED_PREFIX)
            )
            .with_for_update()
        )
    ).all()
    for row in plain:
        values = {"secret": _sealed(box, row.secret)}
        if row.previous_secret is not None:
            values["previous_secret"] = _sealed(box, row.previous_secret)
        await conn.execute(update(subs).where(subs.c.subscription_id == row.subscription_id).values(**values))
    return len(plain)


def _sealed(box: SecretBox, stored: str) -> str:
    return stored if stored.startswith(SEALED_PREFIX) else box.seal(stored)


async def enqueue_deliveries(
    conn: AsyncConnection, tables: WebhookTables, rows: list[dict[str, Any]]
) -> None:
    """Pending deliveries; one already enqueued for the same subscriber and message stays as it is."""
    if rows:
        await conn.execute(
            insert(tables.deliveries)
            .values(rows)
            .on_conflict_do_nothing(constraint="uq_webhook_deliveries_once")
        )


async def claim_due_deliveries(
    conn: AsyncConnection, tables: WebhookTables, *, now: datetime, limit: int
) -> Sequence[Row[Any]]:
    """Due deliveries of active subscriptions with their URL and secrets, locked for this
    transaction; other instances skip them. A paused subscription's deliveries wait."""
    deliveries, subs = tables.deliveries, tables.subscriptions
    statement = (
        select(
            deliveries, subs.c.url, subs.c.secret, subs.c.previous_secret, subs.c.previous_secret_expires_at
        )
        .join(subs, subs.c.subscription_id == deliveries.c.subscription_id)
        .where(deliveries.c.status == "pending", deliveries.c.next_attempt_at <= now, subs.c.active)
        .order_by(deliveries.c.next_attempt_at)
        .limit(limit)
        .with_for_update(of=deliveries, skip_locked=True)
    )
    return (await conn.execute(statement)).all()


async def update_delivery(
    conn: AsyncConnection, tables: WebhookTables, delivery_id: int, **values: Any
) -> None:
    deliveries = tables.deliveries
    await conn.execute(update(deliveries).where(deliveries.c.delivery_id == delivery_id).values(**values))


async def trim_backlogs(conn: AsyncConnection, tables: WebhookTables, *, keep: int) -> dict[str, int]:
    """Mark `dropped` every pending delivery of a subscription beyond its `keep` newest; how many, by
    subscription. A receiver that stays down cannot make its backlog grow without bound."""
    deliveries, subs = tables.deliveries, tables.subscriptions
    newer = deliveries.alias("newer")
    newest_dropped = (
        select(newer.c.delivery_id)
        .where(newer.c.subscription_id == subs.c.subscription_id, newer.c.status == "pending")
        .order_by(newer.c.delivery_id.desc())
        .offset(keep)
        .limit(1)
        .scalar_subquery()
    )
    cut = select(subs.c.subscription_id, newest_dropped.label("newest_dropped")).subquery()
    statement = (
        update(deliveries)
        .where(
            deliveries.c.subscription_id == cut.c.subscription_id,
            deliveries.c.status == "pending",
            deliveries.c.delivery_id <= cut.c.newest_dropped,
        )
        .values(status="dropped", last_error="dropped: over the pending cap")
        .returning(deliveries.c.subscription_id)
    )
    dropped: dict[str, int] = {}
    for (subscription_id,) in (await conn.execute(statement)).all():
        dropped[subscription_id] = dropped.get(subscription_id, 0) + 1
    return dropped


async def deliveries_of(
    conn: AsyncConnection, tables: WebhookTables, *, subscription_id: str, limit: int
) -> Sequence[Row[Any]]:
    deliveries = tables.deliveries
    statement = (
        select(deliveries)
        .where(deliveries.c.subscription_id == subscription_id)
        .order_by(deliveries.c.delivery_id.desc())
        .limit(limit)
    )
    return (await conn.execute(statement)).all()


# --- enqueueing: from the consumer, in the batch's transaction -------------------------


def make_enqueue(tables: WebhookTables, *, always: frozenset[str] = frozenset()) -> BatchHandler:
    """A batch handler for the subscribable event types: one delivery per subscriber and event;
    event types in `always` go to every active subscriber."""

    async def enqueue(uow: UnitOfWork, items: list[tuple[Envelope, Any]]) -> None:
        """One pending delivery per active subscriber of each event's type (once per event)."""
        subscribers = [s for s in await subscriptions(uow.conn, tables) if s.active]  # paused: nothing queued
        await enqueue_deliveries(
            uow.conn,
            tables,
            [
                {
                    "subscription_id": s.subscription_id,
                    "message_id": envelope.id,
                    "event_type": envelope.type,
                    "payload": envelope.to_bytes(),
                }
                for envelope, _ in items
                for s in subscribers
                if envelope.type in s.event_types or envelope.type in always
            ],
        )

    return enqueue
