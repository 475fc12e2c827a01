"""Intake's one use case: accept valid events onto `lead.events` (`accept`).

Intake holds no state, so there is no outbox: the 202 is sent only after the
broker acknowledged every event of the request (acks=all). A client that sees
an error retries with the same `event_id`, which downstream deduplicates.

`accept` is the hot path every intake route shares (`/v1/events`, `/v1/events/batch`, the
Tracking API's): it builds each Kafka record as one dict dumped once (`envelope_record`),
rather than through the payload and envelope models (`to_envelope`, which the tests and the
bench use, and which writes the same bytes).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from pydantic import TypeAdapter

from services.intake.domain import IntakeEvent, TrackingPlan, check_against_plan, identity_of
from services.intake.event_limits import EventLimits, limit_problems, size_problem
from services.intake.metrics import count_accepted, count_rejected
from services.intake.privacy import EventSealer, seal_events
from services.intake.settings import IntakeSettings
from shared.envelope import Envelope, utcnow
from shared.events import LeadEventAccepted, envelope_for
from shared.identities import normalize_anonymous_id, normalize_email
from shared.logging import current_trace_id, new_trace_id
from shared.outages import DependencyUnavailable
from shared.problems import FieldError, invalid
from shared.runtime import ServiceRuntime, ServiceSpec

# An instant spelled as the envelope models spell it in JSON (`2026-03-01T12:00:00Z`).
_INSTANT = TypeAdapter(datetime)


class IntakeRuntime(ServiceRuntime):
    """The runtime of intake: its own settings (`max_batch_events`), tracking plan and limits."""

    settings: IntakeSettings

    def __init__(self, spec: ServiceSpec, settings: IntakeSettings, tracking_plan: TrackingPlan) -> None:
        super().__init__(spec, settings)
        self.tracking_plan = tracking_plan
        self.event_limits: EventLimits = settings.event_limits
        self.sealer = EventSealer(self.vault, self.engine, settings.privacy_suppressed_events)


async def accept(
    runtime: IntakeRuntime, events: list[IntakeEvent], *, batch: bool, source: str = "intake"
) -> list[str]:
    """Validate every event (the tracking plan, what downstream can store), publish all of them
    and wait for the broker's acks; returns their event ids. All or nothing: any invalid event
    refuses the request with a 422 naming `events.<i>.<field>` (`batch`) or `<field>`."""
    return await accept_events(
        events,
        plan=runtime.tracking_plan,
        limits=runtime.event_limits,
        producer=runtime.producer,
        topic=runtime.topics.events,
        source=source,
        batch=batch,
        ack_by=ack_deadline(runtime.settings.produce_timeout_s),
        sealer=runtime.sealer,
    )


def ack_deadline(seconds: float) -> float:
    """The event loop's time `seconds` from now. A request's sealing and acks share it: sealing
    writes a new person's key to Postgres, and under load that took half a second on top of a
    full ack wait, so a frozen broker's 503 came late. Past it, either is a 503."""
    return asyncio.get_running_loop().time() + seconds


async def accept_events(
    events: list[IntakeEvent],
    *,
    plan: TrackingPlan,
    limits: EventLimits,
    producer: AIOKafkaProducer,
    topic: str,
    source: str,
    batch: bool,
    ack_by: float,
    sealer: EventSealer,
) -> list[str]:
    """`accept` with its parts named, for a caller that holds them rather than the runtime
    (the Tracking API's `tracking_handlers`): the same validation, records and publish."""
    now = utcnow()
    validate(events, plan, limits, now=now, batch=batch)
    records = [envelope_record(event, received_at=now, source=source) for event in events]
    # personal fields sealed; the erased refused
    try:
        # The deadline bounds the key write too, not only the acks: Postgres's own timeouts
        # (pool, connect, statement) add up to more than a request may wait.
        async with asyncio.timeout_at(ack_by):
            records = await sealed_records(sealer, records, batch=batch)
    except TimeoutError:
        raise DependencyUnavailable("the people's data keys were not ready in time") from None
    values = serialize_records([record for _, _, record in records], limits, batch=batch)
    keys = [key for key, _, _ in records]
    await publish(producer, topic, list(zip(keys, values, strict=True)), ack_by=ack_by)
    count_accepted(len(records))
    return [event_id for _, event_id, _ in records]


async def sealed_records(
    sealer: EventSealer, records: list[tuple[bytes, str, dict[str, Any]]], *, batch: bool
) -> list[tuple[bytes, str, dict[str, Any]]]:
    """`privacy.seal_events` over the records: each keyed by its subject, with its personal fields
    sealed; an erased person's refused (or dropped)."""
    sealed = await seal_events(sealer, [record for _, _, record in records], batch=batch)
    return [(record["identity"].encode(), record["data"]["event_id"], record) for record in sealed]


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


def serialize_records(envelopes: list[dict[str, Any]], limits: EventLimits, *, batch: bool) -> list[bytes]:
    """Each envelope as the Kafka record it becomes; one larger than the limit refuses the request."""
    records = [orjson.dumps(envelope) for envelope in envelopes]
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


def accepted_event(event: IntakeEvent, *, received_at: datetime) -> LeadEventAccepted:
    """The `lead.events` payload of a valid event. Built without validating again: every value
    comes from an `IntakeEvent` already validated, and the payload's fields are plain copies."""
    return LeadEventAccepted.model_construct(
        event_id=event.event_id or str(uuid.uuid4()),
        type=event.type,
        occurred_at=event.occurred_at,
        received_at=received_at,
        email=normalize_email(event.email) if event.email else None,
        anonymous_id=normalize_anonymous_id(event.anonymous_id) if event.anonymous_id else None,
        previous_id=normalize_anonymous_id(event.previous_id) if event.previous_id else None,
        traits=event.traits.model_dump(exclude_none=True),
        properties=dict(event.properties),
    )


def envelope_record(
    event: IntakeEvent, *, received_at: datetime, source: str
) -> tuple[bytes, str, dict[str, Any]]:
    """(Kafka key, event id, envelope as JSON-ready dict) of a valid event: the fields and
    spelling of `to_envelope(...).to_bytes()`, one payload model and one dump fewer."""
    data = accepted_event(event, received_at=received_at)
    identity = identity_of(event)
    occurred_at = _INSTANT.dump_python(event.occurred_at, mode="json")
    envelope = {
        "id": data.message_id,
        "type": LeadEventAccepted.event_type.value,
        "schema_version": LeadEventAccepted.schema_version,
        "occurred_at": occurred_at,
        "produced_at": _INSTANT.dump_python(utcnow(), mode="json"),
        "source": source,
        "lead_id": None,
        "identity": identity,
        "trace_id": current_trace_id() or new_trace_id(),
        # `data.model_dump(mode="json")`, spelled out: traits and properties hold JSON scalars only
        "data": {
            "event_id": data.event_id,
            "type": data.type,
            "occurred_at": occurred_at,
            "received_at": _INSTANT.dump_python(received_at, mode="json"),
            "email": data.email,
            "anonymous_id": data.anonymous_id,
            "previous_id": data.previous_id,
            "traits": data.traits,
            "properties": data.properties,
            "sealed": data.sealed,  # set by `sealed_records`, which seals the personal fields
            "subject": data.subject,
        },
    }
    return identity.encode(), data.event_id, envelope


def to_envelope(event: IntakeEvent, *, received_at: datetime, source: str) -> Envelope:
    """The envelope of a valid event as a model (for tests and tools; `accept` uses `envelope_record`)."""
    data = accepted_event(event, received_at=received_at)
    return envelope_for(
        data,
        source=source,
        lead_id=None,
        occurred_at=event.occurred_at,
        identity=identity_of(event),
        message_id=data.message_id,
    )


async def publish(
    producer: AIOKafkaProducer, topic: str, records: list[tuple[bytes, bytes]], *, ack_by: float
) -> None:
    """Send the (key, value) records and wait for the broker's acks until `ack_by` (`ack_deadline`).

    Past it the broker is treated as down (a 503): the producer may still
    deliver some of them later, which is why a client retries with the same `event_id`.
    """
    acks: list[asyncio.Future[object]] = []
    try:
        async with asyncio.timeout_at(ack_by):
            for key, value in records:
                acks.append(await producer.send(topic, value=value, key=key))
            await asyncio.wait(acks)  # unlike wait_for, leaves the futures to the producer
    except TimeoutError:
        for ack in acks:
            ack.add_done_callback(_outcome_seen)
        raise DependencyUnavailable("Kafka did not acknowledge the events in time") from None
    for ack in acks:
        ack.result()


def _outcome_seen(ack: asyncio.Future[object]) -> None:
    """Read a late ack's outcome, so an abandoned failure is not logged as never retrieved."""
    if not ack.cancelled():
        ack.exception()
