"""Two scoring instances share `lead.events`. One is killed with SIGKILL: the other consumes its
partitions again within seconds (the session timeout), not the 20 s of the client defaults."""

from __future__ import annotations

import re
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from leadflow.admin.migrations import migrate_all
from leadflow.devstack.processes import stop_process
from services.intake.domain import IntakeEvent
from services.intake.handlers import to_envelope
from shared.envelope import utcnow
from shared.settings import Settings
from shared.topics import Topics
from tests.support import (
    ADMIN,
    eventually,
    good_fit_journey,
    loopback_client,
    producer,
    service_ready,
    start_service,
    unique_email,
)

KILLED_WITHIN_S = 12.0  # session timeout (6 s) + a heartbeat + the rejoin, with room for a loaded machine
_LAG = re.compile(r'leadflow_consumer_lag\{[^}]*partition="(\d+)",topic="([^"]+)"\}')


@asynccontextmanager
async def scoring_instances(
    settings: Settings, count: int
) -> AsyncIterator[list[tuple[subprocess.Popen[bytes], str]]]:
    await migrate_all(settings)
    instances = [start_service("scoring", settings) for _ in range(count)]
    try:
        for _, url in instances:
            await eventually(lambda url=url: service_ready(url), timeout=60)  # type: ignore[misc]
        yield instances
    finally:
        for process, _ in instances:
            stop_process(process)


async def owned_partitions(url: str, topic: str) -> set[int]:
    """The partitions of `topic` an instance reports lag for: the ones it owns."""
    async with loopback_client() as client:
        text = (await client.get(f"{url}/metrics", headers=ADMIN)).text
    return {int(p) for p, t in _LAG.findall(text) if t == topic}


async def send_to_every_partition(settings: Settings) -> list[str]:
    """One event on each partition of `lead.events`; returns their message ids."""
    topic = Topics(settings.topic_prefix).events
    ids = []
    async with producer(settings) as p:
        for partition in range(settings.topic_partitions):
            event = IntakeEvent.model_validate(
                {**good_fit_journey(unique_email())[0], "event_id": uuid.uuid4().hex}
            )
            envelope = to_envelope(event, received_at=utcnow(), source="test")
            await p.send_and_wait(topic, value=envelope.to_bytes(), key=b"k", partition=partition)
            ids.append(envelope.id)
    return ids


async def all_consumed(settings: Settings, ids: list[str]) -> bool:
    conn = await asyncpg.connect(settings.database_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        found = await conn.fetchval("SELECT count(*) FROM scoring.inbox WHERE message_id = ANY($1)", ids)
    finally:
        await conn.close()
    return bool(found == len(ids))


async def group_settled(settings: Settings, urls: list[str]) -> bool:
    """Every instance owns partitions, and together they own all of them (once each)."""
    ids = await send_to_every_partition(settings)
    await eventually(lambda: all_consumed(settings, ids), timeout=30)
    topic = Topics(settings.topic_prefix).events
    owned = [await owned_partitions(url, topic) for url in urls]
    union = set().union(*owned)
    return (
        all(owned) and union == set(range(settings.topic_partitions)) and sum(map(len, owned)) == len(union)
    )


async def test_a_killed_instances_partitions_are_consumed_again_within_seconds(settings: Settings) -> None:
    async with scoring_instances(settings, 2) as instances:
        await eventually(lambda: group_settled(settings, [url for _, url in instances]), timeout=60)
        victim, _ = instances[0]
        victim.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        ids = await send_to_every_partition(settings)
        await eventually(lambda: all_consumed(settings, ids), timeout=60)
        resumed_after = time.monotonic() - killed_at
        print(f"partitions of the killed instance consumed again after {resumed_after:.1f} s")
        assert resumed_after < KILLED_WITHIN_S
