"""The Tracking API's use case: record every message of a request, each one either on
lead.events (through `handlers.accept_events`, intake's own validation and publish) or, when
it maps to nothing or breaks the contract, as a failed event on lead.events.failed.

Nothing of the request is refused for one message (Segment's and RudderStack's SDKs drop a
whole batch on a 4xx); the 202 goes out once the broker acknowledged both kinds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from services.intake.domain import IntakeEvent
from services.intake.handlers import accept_events, ack_deadline, publish
from services.intake.metrics import count_tracking_failed
from services.intake.privacy import EventSealer
from services.intake.tracking_mapping import Failure, Rules, map_message, redact
from services.intake.tracking_schemas import MessageType
from shared.envelope import utcnow
from shared.events import TrackingMessageFailed, envelope_for
from shared.topics import Topics


@dataclass(frozen=True)
class Outlets:
    """Where a request's messages go."""

    producer: AIOKafkaProducer
    topics: Topics
    ack_timeout_s: float  # the request's sealing and both kinds of acks in all
    # Seals personal fields; an erased person's messages are dropped and counted, not refused (an
    # SDK drops a whole batch on a 4xx, other people's events with it): docs/privacy.md.
    sealer: EventSealer


async def accept_messages(
    messages: list[Any],
    *,
    route_type: MessageType | None,
    batch_context: dict[str, Any],
    sent_at: datetime | None,
    rules: Rules,
    outlets: Outlets,
) -> tuple[int, int]:
    """Map, publish and record; returns (events accepted, messages failed)."""
    ack_by = ack_deadline(outlets.ack_timeout_s)
    received_at = utcnow()
    events: list[IntakeEvent] = []
    failed: list[TrackingMessageFailed] = []
    for raw in messages:
        mapped = (
            map_message(
                raw,
                route_type=route_type,
                batch_context=batch_context,
                sent_at=sent_at,
                received_at=received_at,
                rules=rules,
            )
            if isinstance(raw, dict)
            else Failure("not_an_object", "message", "a message is a JSON object")
        )
        if isinstance(mapped, Failure):
            failed.append(failed_event(raw, mapped, route_type=route_type, received_at=received_at))
        else:
            events += mapped
    if events:
        await accept_events(
            events,
            plan=rules.plan,
            limits=rules.limits,
            producer=outlets.producer,
            topic=outlets.topics.events,
            source="intake.tracking",
            batch=True,
            ack_by=ack_by,
            sealer=outlets.sealer,
        )
    if failed:
        await record_failed(failed, outlets, ack_by=ack_by)
    return len(events), len(failed)


def failed_event(
    raw: Any, failure: Failure, *, route_type: MessageType | None, received_at: datetime
) -> TrackingMessageFailed:
    sample = redact(raw)
    message_type = route_type or sample.get("type")
    event = sample.get("event")
    return TrackingMessageFailed(
        reason=failure.reason,
        field=failure.field,
        detail=failure.detail,
        message_type=message_type if isinstance(message_type, str) else None,
        event=event[:200] if isinstance(event, str) else None,
        received_at=received_at,
        sample=sample,
    )


async def record_failed(failed: list[TrackingMessageFailed], outlets: Outlets, *, ack_by: float) -> None:
    """Publish the failed events, keyed by reason; a retried message keeps its envelope id, so
    feedback counts it once."""
    records = []
    for record in failed:
        message_id = record.sample.get("messageId")
        envelope = envelope_for(
            record,
            source="intake.tracking",
            lead_id=None,
            occurred_at=record.received_at,
            message_id=_failed_id(message_id, record.reason) if isinstance(message_id, str) else None,
        )
        records.append((record.reason.encode(), envelope.to_bytes()))
        count_tracking_failed(record.reason)
    await publish(outlets.producer, outlets.topics.failed_events, records, ack_by=ack_by)


def _failed_id(message_id: str, reason: str) -> str:
    digest = hashlib.sha256(f"{message_id}\x00{reason}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"failed:{digest[:32]}"
