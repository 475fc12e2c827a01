"""A record too large to dead-letter whole (5 MB on `lead.events`) goes to the DLQ as a reference
to where it is, and the consumer moves on to the next record."""

from __future__ import annotations

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.intake.domain import IntakeEvent
from services.intake.handlers import to_envelope
from shared.envelope import utcnow
from shared.kafka import ensure_topics
from shared.settings import Settings
from shared.topics import Topics
from tests.support import eventually, good_fit_journey, running, tap, unique_email

FIVE_MB = 5 * 1024 * 1024


async def with_large_records_allowed(settings: Settings) -> Settings:
    """Topics of their own, `lead.events` created taking 8 MB records (Apache Kafka refuses over
    1 MB by default; the embedded broker cannot alter a topic's config afterwards)."""
    own = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}big."})
    admin = AIOKafkaAdminClient(bootstrap_servers=own.kafka_bootstrap)
    await admin.start()
    try:
        events = NewTopic(
            Topics(own.topic_prefix).events,
            own.topic_partitions,
            own.topic_replication,
            topic_configs={"max.message.bytes": str(8 * 1024 * 1024)},
        )
        await admin.create_topics([events])
    finally:
        await admin.close()
    await ensure_topics(own)
    return own


async def test_a_5_mb_record_is_dead_lettered_as_a_reference_and_the_next_record_is_scored(
    settings: Settings,
) -> None:
    settings = await with_large_records_allowed(settings)
    topic = Topics(settings.topic_prefix).events
    email = unique_email()
    good = to_envelope(
        IntakeEvent.model_validate(good_fit_journey(email)[0]), received_at=utcnow(), source="test"
    )
    raw = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, max_request_size=8 * 1024 * 1024)
    await raw.start()
    try:
        huge = await raw.send_and_wait(topic, value=b"x" * FIVE_MB, key=b"huge-key", partition=0)
        await raw.send_and_wait(topic, value=good.to_bytes(), key=email.encode(), partition=0)
    finally:
        await raw.stop()

    async with (
        tap(settings, f"{topic}.dlq") as dlq,
        tap(settings, f"{settings.topic_prefix}lead.lifecycle") as lifecycle,
        running("scoring", settings),
    ):
        await lifecycle.wait_for("lead.scored", timeout=30)
        await eventually(lambda: len(dlq.records) >= 1 or None, timeout=10)
        [dead] = dlq.records
        assert dict(dead.headers)["dead_letter"] == b"reference"
        reference = orjson.loads(dead.value)
        assert reference["dead_letter"] == "reference"
        assert (reference["topic"], reference["partition"], reference["offset"]) == (topic, 0, huge.offset)
        assert reference["size"] == FIVE_MB
        assert reference["key"] == "huge-key"
        assert reference["error"] and reference["not_dead_lettered_whole"].startswith(
            "MessageSizeTooLargeError"
        )
        assert dead.key == b"huge-key"
