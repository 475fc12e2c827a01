"""The consumer runner against real Postgres and Kafka: a batch is one transaction, a poison
message is dead-lettered alone, and a redelivered batch changes nothing."""

from __future__ import annotations

import asyncio

from aiokafka.structs import ConsumerRecord
from sqlalchemy import MetaData

from leadflow.admin.migrations import migrate_all
from shared.consumer import ConsumerRunner
from shared.db import make_engine
from shared.envelope import Envelope, utcnow
from shared.events import LeadEventAccepted, envelope_for
from shared.outbox import inbox_table, outbox_table
from shared.settings import Settings
from shared.topics import Topics
from shared.unit_of_work import UnitOfWork
from tests.support import eventually, producer, tap


def record(envelope: Envelope, offset: int, topic: str) -> ConsumerRecord:
    value = envelope.to_bytes()
    return ConsumerRecord(topic, 0, offset, 0, 0, b"k", value, None, 1, len(value), ())


def lead_event(event_id: str) -> Envelope:
    data = LeadEventAccepted(
        event_id=event_id,
        type="page_view",
        occurred_at=utcnow(),
        received_at=utcnow(),
        email="ada@northwind.example",
        properties={"url": "/"},
    )
    return envelope_for(data, source="test", lead_id=None, message_id=f"evt:{event_id}")


async def test_poison_in_a_batch_is_dead_lettered_alone_and_redelivery_changes_nothing(
    settings: Settings,
) -> None:
    await migrate_all(settings)
    engine = make_engine(settings)
    metadata = MetaData()
    topics = Topics(settings.topic_prefix)
    handled: list[str] = []

    async def handle(uow: UnitOfWork, items: list[tuple[Envelope, LeadEventAccepted]]) -> None:
        for _, event in items:
            if event.event_id == "poison":
                raise ValueError("this event cannot be scored")
        handled.extend(event.event_id for _, event in items)

    records = [record(lead_event(e), n, topics.events) for n, e in enumerate(["e1", "poison", "e3"])]
    try:
        async with producer(settings) as p, tap(settings, topics.dlq(topics.events)) as dlq:
            runner = ConsumerRunner(
                group_id="test",
                topics=[topics.events],
                handlers={},
                batch_handlers={"lead.event": handle},
                engine=engine,
                inbox=inbox_table(metadata, "scoring"),
                outbox=outbox_table(metadata, "scoring"),
                topic_names=topics,
                producer=p,
                bootstrap=settings.kafka_bootstrap,
                source="test",
            )
            await runner.handle_batch(records)
            assert handled == ["e1", "e3"]
            await eventually(lambda: len(dlq.records) == 1 or None)
            assert dlq.records[0].value == records[1].value
            assert dict(dlq.records[0].headers)["error"] == b"this event cannot be scored"

            await runner.handle_batch(records)
            await asyncio.sleep(1.0)
            assert handled == ["e1", "e3"]
            assert len(dlq.records) == 1
    finally:
        await engine.dispose()
