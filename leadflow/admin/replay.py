"""`leadflow replay`: a consumer group rewound so its service re-reads a topic."""

from __future__ import annotations

from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.kafka import topic_partitions
from shared.settings import Settings


async def replay(settings: Settings, *, topic: str, group: str, since: datetime | None) -> dict[int, int]:
    """Rewind `group` on `topic` to `since` (or to the beginning): its service re-reads from there.

    Run it while the group's consumers are stopped. Consumers are idempotent (the
    inbox), so a replay changes only what was lost, e.g. after restoring a backup.
    Returns the offset each partition now starts from.
    """
    partitions = await topic_partitions(settings.kafka_bootstrap, topic)
    if not partitions:
        raise ValueError(f"no topic {topic!r} on {settings.kafka_bootstrap}")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(assigned)
        if since is None:
            targets = await consumer.beginning_offsets(assigned)
        else:
            found = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in assigned})
            ends = await consumer.end_offsets(assigned)
            targets = {tp: found[tp].offset if found.get(tp) else ends[tp] for tp in assigned}
        await consumer.commit(targets)
        return {tp.partition: offset for tp, offset in targets.items()}
    finally:
        await consumer.stop()
