"""scoring: one process draining a backlog of lead events (identity, event store, rescoring,
`lead.scored` through the outbox)."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaProducer

from bench.backlog import drain_rate
from bench.lead_events import event
from services.intake.domain import IntakeEvent
from services.intake.handlers import to_envelope
from services.scoring import store as scoring_store
from shared.envelope import utcnow
from shared.settings import Settings

SCORING_LEADS = 500
EVENTS_PER_LEAD = 10


async def scoring_throughput(settings: Settings, db_dsn: str, env: dict[str, str]) -> float:
    """Events/s of one scoring process draining a backlog of lead events."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5)
    await producer.start()
    total = SCORING_LEADS * EVENTS_PER_LEAD
    try:
        futures = []
        for lead in range(SCORING_LEADS):
            email = f"bench{lead}.{uuid.uuid4().hex[:6]}@northwind.example"
            for n in range(EVENTS_PER_LEAD):
                envelope = to_envelope(
                    IntakeEvent.model_validate(event(email, n)), received_at=utcnow(), source="bench"
                )
                futures.append(
                    await producer.send(
                        settings.topic_prefix + "lead.events", envelope.to_bytes(), key=email.encode()
                    )
                )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    done = f"SELECT count(*) FROM {scoring_store.lead_events.fullname}"
    return await drain_rate("scoring", env, db_dsn, total, done)
