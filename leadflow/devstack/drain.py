"""Draining the dev stack before it stops: consumers caught up, outboxes empty.

What is left is measured where it lives: a service's lag is its consumer group's
committed offsets (else, as the consumers start from `earliest`, the
beginning) against the end offsets of the topics it reads (asked of the
broker), its outbox is the rows of `<service>.outbox` (asked of Postgres). The
stack is drained when every service that is up shows neither, twice in a row
with the topics' end offsets unchanged in between: a message published between
two looks would move an end offset, so nothing was in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import make_engine
from shared.kafka import topic_partitions
from shared.settings import ServiceName, Settings
from shared.topics import Topics

POLL_S = 0.2

# The services whose consumers and outboxes a drain waits for (intake has neither).
DRAINED: tuple[ServiceName, ...] = ("scoring", "handoff", "feedback")


def subscriptions(service: ServiceName) -> list[str]:
    """The base topic names the service's consumer reads, as its app declares them."""
    topics: list[str] = importlib.import_module(f"services.{service}.app").SUBSCRIPTIONS
    return topics


@dataclass(frozen=True)
class Backlog:
    """What is not yet processed: lag per (service, topic), outbox rows per service."""

    lag: dict[tuple[ServiceName, str], int] = field(default_factory=dict)
    outbox: dict[ServiceName, int] = field(default_factory=dict)
    ends: dict[TopicPartition, int] = field(default_factory=dict)

    def of(self, services: set[ServiceName]) -> Backlog:
        return Backlog(
            {k: n for k, n in self.lag.items() if k[0] in services},
            {s: n for s, n in self.outbox.items() if s in services},
            self.ends,
        )

    @property
    def empty(self) -> bool:
        return not any(self.lag.values()) and not any(self.outbox.values())

    def describe(self, prefix: str = "") -> str:
        """'lag 12 (scoring lead.events 12), outbox 3 (handoff 3)'; zeros are not itemised."""

        def items(counts: dict[str, int]) -> str:
            listed = ", ".join(f"{what} {n}" for what, n in counts.items() if n)
            return f" ({listed})" if listed else ""

        lag = {f"{s} {t.removeprefix(prefix)}": n for (s, t), n in self.lag.items()}
        outbox = {str(s): n for s, n in self.outbox.items()}
        return f"lag {sum(lag.values())}{items(lag)}, outbox {sum(outbox.values())}{items(outbox)}"


@dataclass(frozen=True)
class DrainResult:
    outcome: Literal["drained", "timed_out", "interrupted", "unmeasured"]
    seconds: float
    left: Backlog | None  # everything still unprocessed, of services up or down (None: not measured)
    down: list[ServiceName]  # services not waited for: not running or not answering
    error: str | None = None  # why the backlog could not be measured (outcome "unmeasured")


class BacklogProbe:
    """Measures a stack's backlog: one consumer reads end offsets, one per group its committed
    offsets (a consumer that subscribes to nothing joins no group), one engine counts outboxes."""

    def __init__(
        self, settings: Settings, offsets: AIOKafkaConsumer, groups: dict[ServiceName, AIOKafkaConsumer]
    ) -> None:
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        self._offsets = offsets
        self._groups = groups
        self._engine: AsyncEngine = make_engine(settings.model_copy(update={"db_pool_size": 1}))
        self._partitions: dict[str, list[TopicPartition]] = {}

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, settings: Settings) -> AsyncIterator[BacklogProbe]:
        topics = Topics(settings.topic_prefix)

        def consumer(group: str | None) -> AIOKafkaConsumer:
            return AIOKafkaConsumer(
                bootstrap_servers=settings.kafka_bootstrap,
                group_id=group,
                enable_auto_commit=False,
                request_timeout_ms=5000,
            )

        clients = {name: consumer(topics.group(name)) for name in DRAINED}
        offsets = consumer(None)
        started: list[AIOKafkaConsumer] = []
        try:
            for client in [offsets, *clients.values()]:
                await client.start()
                started.append(client)
            probe = cls(settings, offsets, clients)
            try:
                yield probe
            finally:
                await probe._engine.dispose()
        finally:
            for client in started:
                await client.stop()

    async def measure(self) -> Backlog:
        """Outboxes first, then lags: a row published meanwhile shows as lag, not as nothing."""
        outbox = {service: await self._outbox_rows(service) for service in DRAINED}
        read = {service: [self.topics.name(base) for base in subscriptions(service)] for service in DRAINED}
        topics = sorted({topic for names in read.values() for topic in names})
        partitions = [tp for topic in topics for tp in await self._partitions_of(topic)]
        ends = await self._offsets.end_offsets(partitions)
        beginnings = await self._offsets.beginning_offsets(partitions)
        lag: dict[tuple[ServiceName, str], int] = {}
        for service, names in read.items():
            group = self._groups[service]
            for topic in names:
                mine = [tp for tp in partitions if tp.topic == topic]
                committed = await asyncio.gather(*(group.committed(tp) for tp in mine))
                lag[(service, topic)] = sum(
                    max(ends[tp] - (beginnings[tp] if offset is None else offset), 0)
                    for tp, offset in zip(mine, committed, strict=True)
                )
        return Backlog(lag, outbox, ends)

    async def _outbox_rows(self, service: ServiceName) -> int:
        outbox = importlib.import_module(f"services.{service}.store").outbox
        async with self._engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(outbox))).scalar_one())

    async def _partitions_of(self, topic: str) -> list[TopicPartition]:
        if topic not in self._partitions:
            found = await topic_partitions(self.settings.kafka_bootstrap, topic)
            self._partitions[topic] = [TopicPartition(topic, p) for p in found]
        return self._partitions[topic]


async def drain(
    settings: Settings,
    *,
    up: Callable[[], Awaitable[set[ServiceName]]],
    timeout_s: float,
    interrupted: Callable[[], bool],
) -> DrainResult:
    """Wait until the services that are `up` have no backlog, at most `timeout_s`.

    `up` is asked at every look (a service may die meanwhile); `interrupted` (a second
    Ctrl-C) is watched all along and ends the wait at once, even inside a look.
    """
    started = time.monotonic()
    seen = _Seen()
    looking = asyncio.create_task(_look_until_drained(settings, up, timeout_s, started, seen))
    while not looking.done():
        if interrupted():
            looking.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await looking
            return DrainResult("interrupted", time.monotonic() - started, seen.left, seen.down)
        await asyncio.wait({looking}, timeout=0.02)
    try:
        return looking.result()
    except Exception as exc:  # a broker or Postgres that does not answer: nothing to wait for
        error = f"{type(exc).__name__}: {exc}"[:300]
        return DrainResult("unmeasured", time.monotonic() - started, seen.left, seen.down, error)


@dataclass
class _Seen:
    left: Backlog | None = None
    down: list[ServiceName] = field(default_factory=list)


async def _look_until_drained(
    settings: Settings,
    up: Callable[[], Awaitable[set[ServiceName]]],
    timeout_s: float,
    started: float,
    seen: _Seen,
) -> DrainResult:
    async with BacklogProbe.open(settings) as probe:
        previous: Backlog | None = None
        while True:
            alive = await up()
            seen.down = [s for s in DRAINED if s not in alive]
            remaining = timeout_s - (time.monotonic() - started)
            left = seen.left = await asyncio.wait_for(probe.measure(), timeout=max(remaining, 1.0))
            waiting = left.of(alive)
            if waiting.empty and previous is not None and previous.ends == left.ends:
                return DrainResult("drained", time.monotonic() - started, left, seen.down)
            previous = left if waiting.empty else None
            if time.monotonic() - started > timeout_s:
                return DrainResult("timed_out", time.monotonic() - started, seen.left, seen.down)
            await asyncio.sleep(POLL_S)


def report(result: DrainResult, *, prefix: str = "", durable: bool = True) -> str:
    """The line `leadflow dev` prints, e.g. 'leadflow: drained in 1.8 s (lag 0, outbox 0)'."""
    left = result.left.describe(prefix) if result.left else "unknown (not measured yet)"
    kept = "kept for the next start" if durable else "LOST: the embedded broker forgets unconsumed events"
    if result.outcome == "unmeasured":
        return f"leadflow: could not drain ({result.error}) after {result.seconds:.1f} s"
    if result.outcome == "interrupted":
        return (
            f"leadflow: drain interrupted after {result.seconds:.1f} s (second Ctrl-C): left {left}; {kept}"
        )
    if result.outcome == "timed_out":
        return (
            f"leadflow: drain gave up after {result.seconds:.1f} s (LEADFLOW_DEV_DRAIN_TIMEOUT_S): "
            f"left {left}; {kept}"
        )
    line = f"leadflow: drained in {result.seconds:.1f} s (lag 0, outbox 0)"
    if result.down:
        line += f" without {', '.join(result.down)} (down): left {left}; {kept}"
    return line
