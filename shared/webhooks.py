"""Outbound webhooks any service can offer: subscriptions, and signed deliveries retried for a day.

Deliveries are rows: a service's consumer enqueues one per subscriber for each event of a
subscribed type it sees on a topic (so a delivery exists only for an event that was committed
and published), and a loop posts the due ones, signed as Stripe signs its webhooks
(`shared.signing`), retrying with exponential backoff before marking them failed. Rows are
claimed with `FOR UPDATE SKIP LOCKED`, so several instances never post the same delivery at
once. A delivery stores the event's envelope; what is posted is rendered from it at send time
(handoff posts the envelope itself, feedback a Slack message).

A service defines the two tables on its own metadata and schema (`webhook_tables`), creates
them in a migration (`shared.migration_ops.create_webhook_tables`), and wires `make_enqueue`,
`make_delivery_loop`, and `shared.webhook_api.webhook_router` with its event types.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate
from typing import Any

import httpx
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
from shared.envelope import Envelope, utcnow
from shared.logging import get_logger
from shared.metrics import WEBHOOK_DELIVERIES
from shared.runtime import BackgroundLoop, ServiceRuntime
from shared.signing import SIGNATURE_HEADER, retry_delays, sign
from shared.unit_of_work import UnitOfWork

log = get_logger(__name__)

Render = Callable[[bytes], bytes]  # the stored envelope -> the body to post


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
        Column("secret", Text, nullable=False),
        Column("active", Boolean, nullable=False, server_default=true()),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
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
        Column("status", Text, nullable=False, server_default="pending"),  # pending | delivered | failed
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("last_status_code", Integer, nullable=True),
        Column("last_error", Text, nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("delivered_at", DateTime(timezone=True), nullable=True),
        UniqueConstraint("subscription_id", "message_id", name="uq_webhook_deliveries_once"),
        Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
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
    """Due deliveries with their URL and secret, locked for this transaction; other instances skip them."""
    deliveries, subs = tables.deliveries, tables.subscriptions
    statement = (
        select(deliveries, subs.c.url, subs.c.secret)
        .join(subs, subs.c.subscription_id == deliveries.c.subscription_id)
        .where(deliveries.c.status == "pending", deliveries.c.next_attempt_at <= now)
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


def make_enqueue(tables: WebhookTables) -> BatchHandler:
    """A batch handler for the subscribable event types: one delivery per subscriber and event."""

    async def enqueue(uow: UnitOfWork, items: list[tuple[Envelope, Any]]) -> None:
        """One pending delivery per active subscriber of each event's type (once per event)."""
        subscribers = [s for s in await subscriptions(uow.conn, tables) if s.active]
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
                if envelope.type in s.event_types
            ],
        )

    return enqueue


# --- delivering: a background loop ------------------------------------------------------


def as_stored(payload: bytes) -> bytes:
    """Post the event's envelope itself, byte for byte as it was published."""
    return payload


def attempt_schedule(first_s: float, max_age: timedelta) -> list[timedelta]:
    """When each retry is due, counted from the delivery's creation."""
    return list(accumulate(retry_delays(max_age=max_age, first=timedelta(seconds=first_s))))


def signed_request(delivery: Any, render: Render, *, timestamp: int) -> tuple[bytes, dict[str, str]]:
    """The body to post for a delivery and its headers, the signature over exactly that body."""
    body = render(delivery.payload)
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(delivery.secret, body, timestamp=timestamp),
        "Leadflow-Event-Type": delivery.event_type,
        "Leadflow-Delivery-Id": str(delivery.delivery_id),
    }
    return body, headers


async def post(client: httpx.AsyncClient, delivery: Any, render: Render) -> tuple[int | None, str | None]:
    """(status code, error) of one attempt; a body that cannot be rendered counts as a failed attempt."""
    try:
        body, headers = signed_request(delivery, render, timestamp=int(time.time()))
    except Exception as exc:
        return None, f"cannot render the body: {type(exc).__name__}: {exc}"[:500]
    try:
        response = await client.post(delivery.url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500]
    return response.status_code, None if response.is_success else response.text[:500]


def next_state(
    delivery: Any, status: int | None, error: str | None, now: datetime, schedule: list[timedelta]
) -> dict[str, Any]:
    """The delivery's columns after an attempt: delivered, due again later, or failed for good."""
    attempts = delivery.attempts + 1
    state: dict[str, Any] = {"attempts": attempts, "last_status_code": status, "last_error": error}
    if status is not None and 200 <= status < 300:
        return {**state, "status": "delivered", "delivered_at": now}
    if attempts > len(schedule):
        return {**state, "status": "failed"}
    return {**state, "next_attempt_at": delivery.created_at + schedule[attempts - 1]}


async def deliver_due(
    runtime: ServiceRuntime,
    client: httpx.AsyncClient,
    tables: WebhookTables,
    *,
    render: Render,
    schedule: list[timedelta],
    limit: int = 20,
) -> int:
    """Post every due delivery once; returns how many were attempted."""
    now = utcnow()
    async with runtime.engine.begin() as conn:
        due = await claim_due_deliveries(conn, tables, now=now, limit=limit)
        outcomes = await asyncio.gather(*(post(client, d, render) for d in due))
        states = [
            next_state(delivery, status, error, now, schedule)
            for delivery, (status, error) in zip(due, outcomes, strict=True)
        ]
        for delivery, state in zip(due, states, strict=True):
            await update_delivery(conn, tables, delivery.delivery_id, **state)
    for delivery, state in zip(due, states, strict=True):  # counted once the outcomes are committed
        _record(delivery, state)
    return len(due)


def _record(delivery: Any, state: dict[str, Any]) -> None:
    outcome = state.get("status", "retrying")
    WEBHOOK_DELIVERIES.labels(outcome).inc()
    if outcome == "failed":
        log.warning(
            "webhook_delivery_failed",
            delivery_id=delivery.delivery_id,
            subscription_id=delivery.subscription_id,
            attempts=state["attempts"],
            last_status_code=state["last_status_code"],
        )


def make_delivery_loop(
    tables: WebhookTables,
    *,
    render: Render,
    first_retry_s: float,
    max_age: timedelta,
    poll_s: float,
    name: str = "webhook_deliveries",
) -> BackgroundLoop:
    """The loop posting due deliveries, then sleeping `poll_s` whenever none was due."""
    schedule = attempt_schedule(first_retry_s, max_age)

    async def loop(runtime: ServiceRuntime, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(timeout=5.0) as client:
            while not stop.is_set():
                if await deliver_due(runtime, client, tables, render=render, schedule=schedule) == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=poll_s)

    loop.__name__ = loop.__qualname__ = name  # the runtime names the task after it
    return loop
