"""`leadflow feedback rebuild`: feedback's facts, rebuilt exactly by replaying `lead.lifecycle`.

The replay reads every partition from its beginning up to the end offsets seen when it
starts, and applies the events through `projection.project` — the code the consumer
runs — inside one transaction that first empties the projection. Readers see the old
facts until it commits; the running consumer waits on the table lock and then carries
on (its handlers are idempotent). Alerts are history and are left alone: the running
service re-evaluates them against the rebuilt facts on its next pass.

A topic that yields fewer handoffs than the facts hold has lost history (a broker that
lost its data, a retention shorter than the facts): the rebuild counts both inside its
transaction and raises `HistoryShorterThanFacts`, which rolls it back, unless forced.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncConnection

from services.feedback import store
from services.feedback.projection import PROJECTED, project
from shared.envelope import Envelope
from shared.events import LEAD_LIFECYCLE, parse_data
from shared.kafka import topic_partitions
from shared.logging import get_logger
from shared.settings import Settings
from shared.topics import Topics

log = get_logger(__name__)


class HistoryShorterThanFacts(RuntimeError):
    """The topic yields fewer handoffs than feedback holds: rebuilding would lose facts."""


@dataclass(frozen=True)
class RebuildSummary:
    messages: int  # read from the topic
    applied: int  # lifecycle events feedback keeps facts of, each once
    duplicates: int  # the same envelope id seen again (an outbox relay may publish twice)
    unreadable: int  # not an envelope, or a payload that does not parse (the consumer dead-lettered them)
    handoffs: int
    seconds: float


async def apply_events(
    conn: AsyncConnection, batches: AsyncIterator[list[bytes]] | Iterable[list[bytes]]
) -> RebuildSummary:
    """Empty the projection and apply every lifecycle event in `batches`, each id once."""
    started = time.perf_counter()
    await store.truncate_projection(conn)
    seen: set[str] = set()
    messages = applied = duplicates = unreadable = 0

    async def apply(batch: list[bytes]) -> None:
        nonlocal messages, applied, duplicates, unreadable
        items: list[tuple[Envelope, Any]] = []
        for value in batch:
            messages += 1
            try:
                envelope = Envelope.from_bytes(value)
                if envelope.type not in PROJECTED:
                    continue
                if envelope.id in seen:
                    duplicates += 1
                    continue
                items.append((envelope, parse_data(envelope)))
                seen.add(envelope.id)
            except Exception:
                unreadable += 1
        await project(conn, items)
        applied += len(items)

    if isinstance(batches, AsyncIterator):
        async for batch in batches:
            await apply(batch)
    else:
        for batch in batches:
            await apply(batch)
    handoffs = len((await store.projection_snapshot(conn))["handoff_facts"])
    return RebuildSummary(messages, applied, duplicates, unreadable, handoffs, time.perf_counter() - started)


async def read_topic(bootstrap: str, topic: str, *, batch_size: int = 2000) -> AsyncIterator[list[bytes]]:
    """Every message of `topic`, in partition order, until each partition is caught up.

    A partition is done once the consumer's position has reached both the end offset
    listed at the start and the highwater mark of the latest fetch. The fetch's
    highwater is the authority: Tansu lists end offsets short of the last records
    when they were produced in batches.
    """
    partitions = [TopicPartition(topic, p) for p in await topic_partitions(bootstrap, topic)]
    if not partitions:
        raise ValueError(f"no topic {topic!r} on {bootstrap}")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        beginnings = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, beginnings[tp])
        remaining = set(partitions)
        while remaining:
            fetched = await consumer.getmany(*remaining, timeout_ms=200, max_records=batch_size)
            batch = [r.value for records in fetched.values() for r in records if r.value is not None]
            if batch:
                yield batch
            for tp in list(remaining):
                highwater = consumer.highwater(tp)
                if highwater is not None and await consumer.position(tp) >= max(highwater, ends[tp]):
                    remaining.discard(tp)
    finally:
        await consumer.stop()


async def rebuild(settings: Settings, conn: AsyncConnection, *, force: bool = False) -> RebuildSummary:
    """Replace the projection with what the topic yields; raises HistoryShorterThanFacts (the
    caller's transaction then rolls back) when that is fewer handoffs than it holds, unless `force`."""
    topic = Topics(settings.topic_prefix).name(LEAD_LIFECYCLE)
    held = await store.count_handoffs(conn)
    summary = await apply_events(conn, read_topic(settings.kafka_bootstrap, topic))
    if summary.handoffs < held and not force:
        raise HistoryShorterThanFacts(
            f"{topic} holds the history of {summary.handoffs} handoffs ({summary.messages} messages); "
            f"feedback has {held} handoffs: refusing to replace them; --force to rebuild anyway"
        )
    log.info("feedback_rebuilt", replaced=held, **summary.__dict__)
    return summary
