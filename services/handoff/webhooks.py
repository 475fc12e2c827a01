"""handoff's outbound webhooks: sales tools subscribe to handoff events and get them signed and retried.

The machinery (tables and enqueueing from the consumer: `shared.webhooks`; the delivery loop:
`shared.webhook_delivery`),
the API `shared.webhook_api`; here is what is handoff's: which events can be subscribed to, and that
each delivery posts the event's envelope as it was published on `lead.lifecycle`.
"""

from __future__ import annotations

from datetime import timedelta

from services.handoff import store
from services.handoff.schemas import WEBHOOK_EVENT_TYPES
from shared import webhook_delivery, webhooks
from shared.auth import Scope
from shared.event_types import EventType
from shared.runtime import BackgroundLoop
from shared.webhook_api import webhook_router

EVENT_TYPES = WEBHOOK_EVENT_TYPES

# Every subscriber gets `lead.erased`, whatever it subscribed to: it holds data about the lead.
enqueue = webhooks.make_enqueue(store.webhooks, always=frozenset({EventType.LEAD_ERASED}))

router = webhook_router(
    store.webhooks,
    event_types=EVENT_TYPES,
    scope=Scope.HANDOFFS_MANAGE,
    tag="webhooks",
    subject="handoff events",
    prefix="",  # included in the handoff router, under its /v1
)


def make_delivery_loop(*, first_retry_s: float, max_age: timedelta, poll_s: float) -> BackgroundLoop:
    return webhook_delivery.make_delivery_loop(
        store.webhooks,
        render=webhook_delivery.as_stored,
        first_retry_s=first_retry_s,
        max_age=max_age,
        poll_s=poll_s,
    )
