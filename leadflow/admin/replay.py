"""`leadflow replay`: a consumer group rewound so its service re-reads a topic."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError

from shared.kafka import topic_partitions
from shared.settings import Settings


class HistoryLost(RuntimeError):
    """The topic holds less history than the group has read: a replay would restore nothing."""


def lost_history(
    committed: Mapping[int, int | None], beginnings: Mapping[int, int], ends: Mapping[int, int]
) -> list[str]:
    """Each partition whose history the broker lost, said in words (empty: none).

    A partition lost history when the group has committed offset c and either the
    partition now ends before c (it holds fewer messages than the group already read:
    emptied or recreated, as by a broker that lost its data) or it now begins after c
    (messages the group had not read yet are gone). Retention deleting what the group
    has read (beginning <= c) is not a loss.
    """
    found = []
    for partition, offset in sorted(committed.items()):
        if offset is None:
            continue
        if ends[partition] < offset:
            found.append(
                f"p{partition}: the group had read {offset} messages, the partition ends at {ends[partition]}"
            )
        elif beginnings[partition] > offset:
            begins = beginnings[partition]
            found.append(f"p{partition}: the group had read up to {offset}, the partition begins at {begins}")
    return found


async def replay(
    settings: Settings, *, topic: str, group: str, since: datetime | None, force: bool = False
) -> dict[int, int]:
    """Rewind `group` on `topic` to `since` (or to the beginning): its service re-reads from there.

    Run it while the group's consumers are stopped. Consumers are idempotent (the
    inbox), so a replay changes only what was lost, e.g. after restoring a backup.
    Refuses (HistoryLost) when the topic lost history the group had read or not yet
    read (`lost_history`), unless `force`. Returns the offset each partition now starts from.
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
        beginnings = await consumer.beginning_offsets(assigned)
        ends = await consumer.end_offsets(assigned)
        if not force:
            committed = {tp.partition: await consumer.committed(tp) for tp in assigned}
            lost = lost_history(
                committed,
                {tp.partition: o for tp, o in beginnings.items()},
                {tp.partition: o for tp, o in ends.items()},
            )
            if lost:
                raise HistoryLost(
                    f"{topic} holds less history than {group} has read ({'; '.join(lost)}): the broker "
                    "lost messages, which rewinding would not bring back; refusing to rewind; "
                    "--force to rewind anyway"
                )
        if since is None:
            targets = beginnings
        else:
            found = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in assigned})
            targets = {tp: found[tp].offset if found.get(tp) else ends[tp] for tp in assigned}
        try:
            await consumer.commit(targets)
        except CommitFailedError:
            await _commit_as_member(settings, group, topic, targets)
        return {tp.partition: offset for tp, offset in targets.items()}
    finally:
        await consumer.stop()


async def _commit_as_member(
    settings: Settings, group: str, topic: str, targets: Mapping[TopicPartition, int]
) -> None:
    """Commit `targets` as a member of `group`: a broker that keeps an emptied group's generation
    (the embedded Tansu broker) refuses a commit from outside the group."""
    member = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await member.start()
    try:
        for _ in range(50):
            if member.assignment():
                break
            await member.getmany(timeout_ms=200)
        await member.commit({tp: offset for tp, offset in targets.items() if tp in member.assignment()})
    finally:
        await member.stop()
