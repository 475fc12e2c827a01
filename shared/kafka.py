"""Kafka clients: one producer per process, topic creation, JSON bytes."""

from __future__ import annotations

import contextlib
import random
import struct
from datetime import timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from shared.retention_policy import kafka_retention_ms, keep_for, redelivery_horizon
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
        partitioner=key_partition,
    )


def key_partition(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """aiokafka's default partitioner, the same partition for every key (Java's murmur2, so a key
    lands where any Kafka client puts it), with the hash taken a 4-byte word at a time: the
    default's byte-at-a-time loop cost ~12 us for a 64-character subject key, a few percent of
    an intake request's CPU."""
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[(murmur2(key) & 0x7FFFFFFF) % len(all_partitions)]


_M = 0x5BD1E995  # murmur2's mixing constant


def murmur2(data: bytes) -> int:
    """MurmurHash2 as Kafka's Java client computes it (`Utils.murmur2`, seed 0x9747b28c)."""
    length = len(data)
    h = 0x9747B28C ^ length
    words = length // 4
    for k in struct.unpack_from(f"<{words}I", data):
        k = (k * _M) & 0xFFFFFFFF
        k ^= k >> 24
        h = ((h * _M) & 0xFFFFFFFF) ^ ((k * _M) & 0xFFFFFFFF)
    tail = data[words * 4 :]
    if tail:
        for i in range(len(tail) - 1, -1, -1):
            h ^= tail[i] << (8 * i)
        h = (h * _M) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * _M) & 0xFFFFFFFF
    return h ^ (h >> 15)


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
            # Dead letters hold whole messages (personal data included): they are kept for
            # LEADFLOW_RETENTION_DEAD_LETTERS_DAYS, the other topics for the broker's default.
            dead_letters = {
                **configs,
                "retention.ms": kafka_retention_ms(keep_for(settings.retention_dead_letters_days)),
            }
            dlqs = {topics.dlq(name) for name in topics.all()}
            new = [
                NewTopic(
                    name,
                    settings.topic_partitions,
                    settings.topic_replication,
                    topic_configs=dead_letters if name in dlqs else configs,
                )
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


async def redelivery_horizons(bootstrap: str, topics: list[str]) -> dict[str, timedelta | None]:
    """How old a record of each topic may be and still be delivered: its `retention.ms` plus
    `segment.ms` (and a day), as the cluster says; None for a topic that keeps records forever.

    Raises when the broker cannot describe topic configs (the embedded broker cannot).
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        wanted = {"retention.ms": None, "segment.ms": None}
        resources = [ConfigResource(ConfigResourceType.TOPIC, t, configs=dict(wanted)) for t in topics]
        responses = await admin.describe_configs(resources)
    finally:
        await admin.close()
    horizons: dict[str, timedelta | None] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            if resource["error_code"] != 0:
                raise RuntimeError(
                    f"cannot describe {resource['resource_name']}: {resource['error_message']}"
                )
            values = _config_values(resource["config_entries"])
            horizons[resource["resource_name"]] = redelivery_horizon(
                _int(values.get("retention.ms")), _int(values.get("segment.ms"))
            )
    missing = set(topics) - set(horizons)
    if missing:
        raise RuntimeError(f"the broker did not describe {sorted(missing)}")
    return horizons


def _config_values(entries: list[dict[str, Any]]) -> dict[str, str | None]:
    return {entry["config_names"]: entry["config_value"] for entry in entries}


def _int(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None
