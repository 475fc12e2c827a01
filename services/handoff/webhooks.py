"""Outbound webhooks: sales tools subscribe to handoff events and get them signed and retried.

Deliveries are rows: the consumer enqueues one per subscriber for each handoff
event it sees on `lead.lifecycle` (so a delivery exists only for an event that
was committed), and a loop posts the due ones, signed as Stripe signs its
webhooks, retrying with exponential backoff for 24 h before marking them failed.
Rows are claimed with `FOR UPDATE SKIP LOCKED`, so several instances never
post the same delivery at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime, timedelta
from itertools import accumulate
from typing import Any

import httpx

from services.handoff import store
from services.handoff.schemas import WEBHOOK_EVENT_TYPES
from services.handoff.signing import SIGNATURE_HEADER, retry_delays, sign
from shared.envelope import Envelope, utcnow
from shared.logging import get_logger
from shared.runtime import BackgroundLoop, ServiceRuntime
from shared.unit_of_work import UnitOfWork

log = get_logger(__name__)

EVENT_TYPES = WEBHOOK_EVENT_TYPES


async def enqueue(uow: UnitOfWork, items: list[tuple[Envelope, Any]]) -> None:
    """One pending delivery per active subscriber of each event's type (once per event)."""
    subscribers = [s for s in await store.subscriptions(uow.conn) if s.active]
    await store.enqueue_deliveries(
        uow.conn,
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


def attempt_schedule(first_s: float, max_age: timedelta) -> list[timedelta]:
    """When each retry is due, counted from the delivery's creation."""
    return list(accumulate(retry_delays(max_age=max_age, first=timedelta(seconds=first_s))))


async def deliver_due(
    runtime: ServiceRuntime, client: httpx.AsyncClient, *, schedule: list[timedelta], limit: int = 20
) -> int:
    """Post every due delivery once; returns how many were attempted."""
    now = utcnow()
    async with runtime.engine.begin() as conn:
        due = await store.claim_due_deliveries(conn, now=now, limit=limit)
        outcomes = await asyncio.gather(*(post(client, d) for d in due))
        for delivery, (status, error) in zip(due, outcomes, strict=True):
            await store.update_delivery(
                conn, delivery.delivery_id, **next_state(delivery, status, error, now, schedule)
            )
    return len(due)


async def post(client: httpx.AsyncClient, delivery: Any) -> tuple[int | None, str | None]:
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(delivery.secret, delivery.payload, timestamp=int(time.time())),
        "Leadflow-Event-Type": delivery.event_type,
        "Leadflow-Delivery-Id": str(delivery.delivery_id),
    }
    try:
        response = await client.post(delivery.url, content=delivery.payload, headers=headers)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500]
    return response.status_code, None if response.is_success else response.text[:500]


def next_state(
    delivery: Any, status: int | None, error: str | None, now: datetime, schedule: list[timedelta]
) -> dict[str, Any]:
    attempts = delivery.attempts + 1
    state: dict[str, Any] = {"attempts": attempts, "last_status_code": status, "last_error": error}
    if status is not None and 200 <= status < 300:
        return {**state, "status": "delivered", "delivered_at": now}
    if attempts > len(schedule):
        return {**state, "status": "failed"}
    return {**state, "next_attempt_at": delivery.created_at + schedule[attempts - 1]}


def make_delivery_loop(*, first_retry_s: float, max_age: timedelta, poll_s: float) -> BackgroundLoop:
    schedule = attempt_schedule(first_retry_s, max_age)

    async def webhook_deliveries(runtime: ServiceRuntime, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(timeout=5.0) as client:
            while not stop.is_set():
                if await deliver_due(runtime, client, schedule=schedule) == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=poll_s)

    return webhook_deliveries
