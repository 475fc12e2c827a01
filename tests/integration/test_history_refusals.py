"""Rebuild and replay refuse to act on a topic that holds less history than the state they would
replace or restore (a broker that lost its data), and do it anyway when forced.

A topic that lost its history is shown the way leadflow meets one after a broker lost its data:
topics of the same names (here: under a fresh prefix, which the commands cannot tell apart)
holding only what arrived since.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import func, select

from leadflow.admin.feedback_rebuild import rebuild_feedback
from leadflow.admin.replay import HistoryLost, replay
from services.feedback import store
from shared.db import make_engine
from shared.kafka import ensure_topics
from shared.settings import Settings
from tests.integration.test_pipeline_services import publish
from tests.lifecycle import created
from tests.support import producer


async def facts_held(settings: Settings) -> int:
    engine = make_engine(settings)
    try:
        async with engine.connect() as conn:
            return int(
                (await conn.execute(select(func.count()).select_from(store.handoff_facts))).scalar_one()
            )
    finally:
        await engine.dispose()


def leadflow(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "LEADFLOW_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "LEADFLOW_DATABASE_URL": settings.database_url,
        "LEADFLOW_TOPIC_PREFIX": settings.topic_prefix,
    }
    command = [sys.executable, "-m", "leadflow", *args]
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120, check=False)


async def test_rebuild_refuses_a_topic_with_fewer_handoffs_than_feedback_holds(settings: Settings) -> None:
    handoffs = [created(n) for n in range(20)]
    await publish(settings, handoffs, topic="lead.lifecycle")
    assert (await rebuild_feedback(settings)).handoffs == 20

    after_loss = settings.model_copy(update={"topic_prefix": f"t{uuid.uuid4().hex[:10]}."})
    await ensure_topics(after_loss)
    await publish(after_loss, handoffs[:5], topic="lead.lifecycle")

    refused = leadflow(after_loss, "feedback", "rebuild")
    assert refused.returncode == 1
    assert (
        f"{after_loss.topic_prefix}lead.lifecycle holds the history of 5 handoffs (5 messages); "
        "feedback has 20 handoffs: refusing to replace them; --force to rebuild anyway"
    ) in refused.stderr
    assert await facts_held(settings) == 20  # rolled back: nothing replaced

    forced = leadflow(after_loss, "feedback", "rebuild", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "rebuilt 5 handoffs from 5 events" in forced.stdout
    assert await facts_held(settings) == 5


async def test_replay_refuses_a_topic_that_holds_less_than_the_group_has_read(settings: Settings) -> None:
    topic = settings.topic_prefix + "lead.events"
    group = settings.topic_prefix + "leadflow-scoring"
    async with producer(settings) as p:
        for n in range(12):
            await p.send_and_wait(topic, f"m-{n}".encode(), key=f"k{n}".encode())
    read = await end_offsets(settings, topic)  # where a group that is caught up has committed
    assert sum(read.values()) == 12

    # The broker lost the topic's data and the topic was created again; the group's offsets survived.
    after_loss = settings.model_copy(update={"topic_prefix": f"t{uuid.uuid4().hex[:10]}."})
    await ensure_topics(after_loss)
    lost_topic = after_loss.topic_prefix + "lead.events"
    await carry_offsets(after_loss, group, {TopicPartition(lost_topic, p): o for p, o in read.items()})
    async with producer(after_loss) as p:
        await p.send_and_wait(lost_topic, b"since the loss", key=b"k0")

    with pytest.raises(HistoryLost, match=r"holds less history than .* refusing to rewind"):
        await replay(after_loss, topic=lost_topic, group=group, since=None)

    refused = leadflow(after_loss, "replay", "lead.events", "--group", group)
    assert refused.returncode == 1
    assert f"{lost_topic} holds less history than {group} has read (p" in refused.stderr
    assert "--force to rewind anyway" in refused.stderr

    forced = leadflow(after_loss, "replay", "lead.events", "--group", group, "--force")
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.startswith(f"{group} will re-read lead.events from p0@0")


async def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        return {tp.partition: offset for tp, offset in (await consumer.end_offsets(partitions)).items()}
    finally:
        await consumer.stop()


async def carry_offsets(settings: Settings, group: str, offsets: dict[TopicPartition, int]) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=group)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()
