"""intake's figure for `/metrics`, `leadflow_intake_events_total{outcome, reason}`, and how it
counts events (the platform's figures are in shared/metrics.py).

Every event of a request counts once, so a refused batch of 50 counts 50. A
refused event's reason is the first rule it broke, named as in the problem+json
answer (`tracking_plan_type`, `required_by_tracking_plan`, `missing`, ...):
names from code, never values from the request. The valid events of a refused
batch count as `batch_rejected` (a batch is taken whole or not at all). A body
over the size limit counts as one `too_large`: its events were never read.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import prometheus_client
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.field_errors import FieldError

INTAKE_EVENTS = prometheus_client.Counter(
    "leadflow_intake_events_total",
    "Events intake accepted onto lead.events or refused; reason: the rule a refused event broke",
    ["outcome", "reason"],
)

EVENT_PATHS = frozenset({"/v1/events", "/v1/events/batch"})
_EVENT_FIELD = re.compile(r"^events\.(\d+)(?:\.|$)")


def count_accepted(events: int) -> None:
    INTAKE_EVENTS.labels("accepted", "").inc(events)


def count_rejected(errors: list[FieldError], *, events: int) -> None:
    """Count `events` refused events; a batch's errors name their event (`events.<i>.field`)."""
    first_rule: dict[int, str] = {}
    request_rule: str | None = None
    for error in errors:
        match = _EVENT_FIELD.match(error.field)
        if match:
            first_rule.setdefault(int(match.group(1)), error.rule)
        elif request_rule is None:
            request_rule = error.rule
    reasons = Counter(first_rule.values())
    reasons[request_rule or "batch_rejected"] += max(events - len(first_rule), 0)
    for reason, count in reasons.items():
        if count:
            INTAKE_EVENTS.labels("rejected", reason).inc(count)


def events_in(body: Any, *, batch: bool) -> int:
    """How many events a malformed request held; one when they cannot be told apart."""
    if batch and isinstance(body, dict) and isinstance(body.get("events"), list):
        return max(len(body["events"]), 1)
    return 1


class CountOversized:
    """Counts a body refused for its size; the shared `BodyLimits` inside answers the 413."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in EVENT_PATHS:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        counted = declared is not None and declared.isdigit() and int(declared) > self.max_bytes
        if counted:
            INTAKE_EVENTS.labels("rejected", "too_large").inc()
        received = 0

        async def measured_receive() -> Message:  # a body sent without a length, in chunks
            nonlocal received, counted
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes and not counted:
                counted = True
                INTAKE_EVENTS.labels("rejected", "too_large").inc()
            return message

        await self.app(scope, measured_receive, send)


# The Tracking API's messages that became failed events (lead.events.failed, listed by feedback's
# GET /v1/failed-events); reason: the rule the message broke, a name from code.
TRACKING_FAILED = prometheus_client.Counter(
    "leadflow_intake_tracking_failed_total",
    "Tracking API messages accepted but not put on lead.events; reason: the rule each one broke",
    ["reason"],
)


def count_tracking_failed(reason: str) -> None:
    TRACKING_FAILED.labels(reason).inc()
