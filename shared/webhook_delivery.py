"""The loop posting due webhook deliveries: each attempt on its own, so none can stop the others.

An attempt renders the stored envelope, signs it with the subscription's secret (and the
previous one while a rotation's grace period runs), and posts it through
`shared.webhook_transport` (public destinations only, a few KB of answer read). Whatever an
attempt does, raising included, ends as that delivery's outcome (retried on schedule, or
failed); the loop goes on. Paused subscriptions are not claimed.
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
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.destinations import AllowList
from shared.envelope import utcnow
from shared.logging import get_logger
from shared.metrics import WEBHOOK_DELIVERIES
from shared.runtime import BackgroundLoop, ServiceRuntime
from shared.secret_box import SecretBox
from shared.signing import SIGNATURE_HEADER, retry_delays, sign_with_each
from shared.webhook_transport import Answer, Resolver, make_client, post_once, system_resolver
from shared.webhooks import (
    WebhookTables,
    claim_due_deliveries,
    seal_plain_secrets,
    trim_backlogs,
    update_delivery,
)

log = get_logger(__name__)

Render = Callable[[bytes], bytes]  # the stored envelope -> the body to post
TRIM_EVERY_S = 30.0


@dataclass(frozen=True)
class Delivering:
    """What every attempt of one service's loop needs."""

    tables: WebhookTables
    render: Render
    schedule: list[timedelta]
    box: SecretBox
    allow: AllowList


def as_stored(payload: bytes) -> bytes:
    """Post the event's envelope itself, byte for byte as it was published."""
    return payload


def attempt_schedule(first_s: float, max_age: timedelta) -> list[timedelta]:
    """When each retry is due, counted from the delivery's creation."""
    return list(accumulate(retry_delays(max_age=max_age, first=timedelta(seconds=first_s))))


def signing_secrets(delivery: Any, box: SecretBox, now: datetime) -> list[str]:
    """The current secret, then the previous one while its grace period runs."""
    secrets = [box.open(delivery.secret)]
    expires = delivery.previous_secret_expires_at
    if delivery.previous_secret is not None and expires is not None and expires > now:
        secrets.append(box.open(delivery.previous_secret))
    return secrets


def signed_request(
    delivery: Any, render: Render, *, secrets: Sequence[str], timestamp: int
) -> tuple[bytes, dict[str, str]]:
    """The body to post for a delivery and its headers, signed (with each secret) over exactly that body."""
    body = render(delivery.payload)
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign_with_each(secrets, body, timestamp=timestamp),
        "Leadflow-Event-Type": delivery.event_type,
        "Leadflow-Delivery-Id": str(delivery.delivery_id),
    }
    return body, headers


async def attempt(client: httpx.AsyncClient, delivery: Any, how: Delivering, now: datetime) -> Answer:
    """One attempt's answer. It never raises: a body that cannot be rendered or signed, or any
    error of the client, is this delivery's failed attempt and nobody else's."""
    try:
        secrets = signing_secrets(delivery, how.box, now)
        body, headers = signed_request(delivery, how.render, secrets=secrets, timestamp=int(time.time()))
    except Exception as exc:
        return Answer(None, f"cannot render or sign the body ({type(exc).__name__})")
    try:
        return await post_once(client, delivery.url, body, headers, allow=how.allow)
    except Exception as exc:
        log.warning("webhook_attempt_error", delivery_id=delivery.delivery_id, error_type=type(exc).__name__)
        return Answer(None, f"internal error ({type(exc).__name__})")


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
    engine: AsyncEngine, client: httpx.AsyncClient, how: Delivering, *, limit: int = 20
) -> int:
    """Post every due delivery once; returns how many were attempted."""
    now = utcnow()
    async with engine.begin() as conn:
        due = await claim_due_deliveries(conn, how.tables, now=now, limit=limit)
        outcomes = await asyncio.gather(*(attempt(client, d, how, now) for d in due), return_exceptions=True)
        states = [
            next_state(delivery, *_status_and_summary(outcome), now, how.schedule)
            for delivery, outcome in zip(due, outcomes, strict=True)
        ]
        for delivery, state in zip(due, states, strict=True):
            await update_delivery(conn, how.tables, delivery.delivery_id, **state)
    for delivery, state in zip(due, states, strict=True):  # counted once the outcomes are committed
        _record(delivery, state)
    return len(due)


def _status_and_summary(outcome: Answer | BaseException) -> tuple[int | None, str | None]:
    if isinstance(outcome, asyncio.CancelledError):
        raise outcome
    if isinstance(outcome, BaseException):  # `attempt` catches everything; this is the belt
        return None, f"internal error ({type(outcome).__name__})"
    return outcome.status_code, outcome.summary


async def drop_over_cap(engine: AsyncEngine, tables: WebhookTables, *, keep: int) -> None:
    async with engine.begin() as conn:
        dropped = await trim_backlogs(conn, tables, keep=keep)
    for subscription_id, count in dropped.items():
        WEBHOOK_DELIVERIES.labels("dropped").inc(count)
        log.warning("webhook_deliveries_dropped", subscription_id=subscription_id, dropped=count, kept=keep)


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
            last_error=state["last_error"],
        )


def make_delivery_loop(
    tables: WebhookTables,
    *,
    render: Render,
    first_retry_s: float,
    max_age: timedelta,
    poll_s: float,
    name: str = "webhook_deliveries",
    resolve: Resolver = system_resolver,
) -> BackgroundLoop:
    """The loop posting due deliveries, then sleeping `poll_s` whenever none was due.

    On start it seals any secret still stored in plain text; every `TRIM_EVERY_S` it drops the
    pending deliveries beyond `LEADFLOW_WEBHOOK_MAX_PENDING_PER_SUBSCRIPTION`.
    """
    schedule = attempt_schedule(first_retry_s, max_age)

    async def loop(runtime: ServiceRuntime, stop: asyncio.Event) -> None:
        settings = runtime.settings
        how = Delivering(
            tables=tables,
            render=render,
            schedule=schedule,
            box=SecretBox.from_key(settings.secrets_key),
            allow=AllowList.parse(settings.webhook_allowed_hosts),
        )
        async with runtime.engine.begin() as conn:
            if sealed := await seal_plain_secrets(conn, tables, how.box):
                log.info("webhook_secrets_sealed", subscriptions=sealed)
        trimmed_at = 0.0
        async with make_client(how.allow, resolve) as client:
            while not stop.is_set():
                if time.monotonic() - trimmed_at >= TRIM_EVERY_S:
                    await drop_over_cap(
                        runtime.engine, tables, keep=settings.webhook_max_pending_per_subscription
                    )
                    trimmed_at = time.monotonic()
                if await deliver_due(runtime.engine, client, how) == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=poll_s)

    loop.__name__ = loop.__qualname__ = name  # the runtime names the task after it
    return loop
