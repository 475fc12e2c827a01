"""`leadflow replay`: rewinding a consumer group so its service re-reads a topic."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer

from leadflow.admin.replay import replay
from shared.settings import Settings
from tests.support import producer


async def consume_all(settings: Settings, topic: str, group: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        seen: list[bytes] = []
        for _ in range(30):
            batch = await consumer.getmany(timeout_ms=300)
            seen += [r.value for records in batch.values() for r in records]
            if batch:
                await consumer.commit()
            elif seen:
                break
        return seen
    finally:
        await consumer.stop()


async def test_a_rewound_group_reads_the_topic_again_from_the_beginning_or_a_time(settings: Settings) -> None:
    topic = settings.topic_prefix + "lead.events"
    async with producer(settings) as p:
        for n in range(3):
            await p.send_and_wait(topic, f"old-{n}".encode(), key=b"k")
        await asyncio.sleep(1.0)
        middle = datetime.now(UTC)
        await asyncio.sleep(1.0)
        for n in range(2):
            await p.send_and_wait(topic, f"new-{n}".encode(), key=b"k")
    group = settings.topic_prefix + "replayed"
    assert len(await consume_all(settings, topic, group)) == 5
    assert await consume_all(settings, topic, group) == []

    await replay(settings, topic=topic, group=group, since=None)
    assert sorted(await consume_all(settings, topic, group)) == [
        b"new-0",
        b"new-1",
        b"old-0",
        b"old-1",
        b"old-2",
    ]

    await replay(settings, topic=topic, group=group, since=middle)
    assert sorted(await consume_all(settings, topic, group)) == [b"new-0", b"new-1"]
