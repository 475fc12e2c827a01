"""Kafka clients: one producer per process, topic creation, JSON bytes."""

from __future__ import annotations

import contextlib

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.settings import Settings
from shared.topics import Topics


def make_producer(settings: Settings) -> AIOKafkaProducer:
    # acks=all: a 202 from intake means the in-sync replicas have the event. The idempotent
    # producer keeps a retried send from writing it twice; the embedded broker lacks it, so it
    # can be turned off there (consumers deduplicate by envelope id in any case).
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=settings.kafka_idempotent_producer,
        linger_ms=0,
        max_request_size=4 * 1024 * 1024,
        request_timeout_ms=15_000,
        client_id=f"leadflow-{settings.env}",
    )


async def ensure_topics(settings: Settings, topics: Topics | None = None) -> list[str]:
    """Create every leadflow topic that is missing; returns the ones created."""
    topics = topics or Topics(settings.topic_prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [name for name in topics.all() if name not in existing]
        if wanted:
            configs = {"min.insync.replicas": str(settings.topic_min_insync_replicas)}
            new = [
                NewTopic(name, settings.topic_partitions, settings.topic_replication, topic_configs=configs)
                for name in wanted
            ]
            with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race
                await admin.create_topics(new)
        return wanted
    finally:
        await admin.close()


async def topic_partitions(bootstrap: str, topic: str) -> list[int]:
    """The partition ids of `topic`, asked of the cluster (empty when there is no such topic).

    Asked through the admin client: a consumer's `partitions_for_topic` knows only topics it
    already has metadata for, which a consumer with no subscription does not on Apache Kafka.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(
        p["partition"]
        for t in described
        if t["topic"] == topic and t["error_code"] == 0
        for p in t["partitions"]
    )
