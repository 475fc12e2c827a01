"""Intake's one use case: accept valid events onto `lead.events`.

Intake holds no state, so there is no outbox: the 202 is sent only after the
broker acknowledged every event of the request (acks=all). A client that sees
an error retries with the same `event_id`, which downstream deduplicates.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

from aiokafka import AIOKafkaProducer

from services.intake.domain import IntakeEvent, TrackingPlan, check_against_plan, identity_of
from services.intake.event_limits import EventLimits, limit_problems, size_problem
from services.intake.metrics import count_accepted, count_rejected
from services.intake.privacy import EventSealer, seal_events
from shared.envelope import Envelope, utcnow
from shared.events import LeadEventAccepted, envelope_for
from shared.identities import normalize_anonymous_id, normalize_email
from shared.outages import DependencyUnavailable
from shared.problems import FieldError, invalid


def validate(
    events: list[IntakeEvent], plan: TrackingPlan, limits: EventLimits, *, now: datetime, batch: bool
) -> None:
    """The tracking plan's rules and what downstream can store; all or nothing."""
    errors: list[FieldError] = []
    for index, event in enumerate(events):
        at = f"events.{index}." if batch else ""
        errors += check_against_plan(event, plan, now=now, at=at)
        errors += limit_problems(event, limits, now=now, at=at)
    refuse(errors, events=len(events))


def serialize(envelopes: list[Envelope], limits: EventLimits, *, batch: bool) -> list[bytes]:
    """Each envelope as the Kafka record it becomes; one larger than the limit refuses the request."""
    records = [envelope.to_bytes() for envelope in envelopes]
    errors = [
        problem
        for index, record in enumerate(records)
        if (problem := size_problem(len(record), limits, at=f"events.{index}" if batch else ""))
    ]
    refuse(errors, events=len(envelopes))
    return records


def refuse(errors: list[FieldError], *, events: int) -> None:
    if errors:
        count_rejected(errors, events=events)
        raise invalid(errors, title="The event cannot be accepted")


def to_envelope(event: IntakeEvent, *, received_at: datetime, source: str) -> Envelope:
    event_id = event.event_id or str(uuid.uuid4())
    data = LeadEventAccepted(
        event_id=event_id,
        type=event.type,
        occurred_at=event.occurred_at,
        received_at=received_at,
        email=normalize_email(event.email) if event.email else None,
        anonymous_id=normalize_anonymous_id(event.anonymous_id) if event.anonymous_id else None,
        traits=event.traits.model_dump(exclude_none=True),
        properties=event.properties,
    )
    return envelope_for(
        data,
        source=source,
        lead_id=None,
        occurred_at=event.occurred_at,
        identity=identity_of(event),
        message_id=data.message_id,
    )


async def accept_events(
    events: list[IntakeEvent],
    *,
    plan: TrackingPlan,
    limits: EventLimits,
    producer: AIOKafkaProducer,
    topic: str,
    source: str,
    batch: bool,
    deadline_s: float,
    sealer: EventSealer,
) -> list[str]:
    """Validate every event, then publish all of them; returns their event ids."""
    now = utcnow()
    validate(events, plan, limits, now=now, batch=batch)
    envelopes = [to_envelope(e, received_at=now, source=source) for e in events]
    envelopes = await seal_events(
        sealer, envelopes, batch=batch
    )  # personal fields sealed; the erased refused
    records = serialize(envelopes, limits, batch=batch)
    keys = [(envelope.identity or "").encode() for envelope in envelopes]
    await publish(producer, topic, list(zip(keys, records, strict=True)), deadline_s=deadline_s)
    count_accepted(len(envelopes))
    return [env.data["event_id"] for env in envelopes]


async def publish(
    producer: AIOKafkaProducer, topic: str, records: list[tuple[bytes, bytes]], *, deadline_s: float
) -> None:
    """Send the (key, value) records and wait for the broker's acks, `deadline_s` at most in all.

    Past the deadline the broker is treated as down (a 503): the producer may still
    deliver some of them later, which is why a client retries with the same `event_id`.
    """
    acks: list[asyncio.Future[object]] = []
    try:
        async with asyncio.timeout(deadline_s):
            for key, value in records:
                acks.append(await producer.send(topic, value=value, key=key))
            await asyncio.wait(acks)  # unlike wait_for, leaves the futures to the producer
    except TimeoutError:
        for ack in acks:
            ack.add_done_callback(_outcome_seen)
        raise DependencyUnavailable(f"Kafka did not acknowledge the events within {deadline_s:g} s") from None
    for ack in acks:
        ack.result()


def _outcome_seen(ack: asyncio.Future[object]) -> None:
    """Read a late ack's outcome, so an abandoned failure is not logged as never retrieved."""
    if not ack.cancelled():
        ack.exception()
