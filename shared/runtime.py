"""What a running service owns: its engine, producer, outbox relay, consumer and timers.

`ServiceRuntime.start()` returns at once; connecting to Postgres and Kafka,
migrating and starting the background loops happen in a supervised task that
retries with backoff, so a service that starts (or later finds itself) without
its dependencies reports not-ready instead of crashing, and resumes when they
come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from aiokafka import AIOKafkaProducer
from sqlalchemy import MetaData, Table
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.auth import AUTH_MIGRATIONS, AUTH_SCHEMA, KeyStore
from shared.consumer import BatchHandler, ConsumerRunner, GroupMembership, Handler
from shared.db import make_engine, migrate, ping
from shared.envelope import utcnow
from shared.kafka import make_producer
from shared.logging import get_logger
from shared.outbox import OutboxRelay, inbox_table, outbox_table
from shared.retention import Pruned, PruneTarget, inbox_target, prune_service
from shared.settings import ServiceName, Settings
from shared.topics import Topics
from shared.unit_of_work import UnitOfWork, unit_of_work

log = get_logger(__name__)

_STOP_GRACE_S = 5.0
_FIRST_PRUNE_S = 60.0
BackgroundLoop = Callable[["ServiceRuntime", asyncio.Event], Awaitable[None]]


@dataclass
class ServiceSpec:
    """What a service tells the runtime about itself."""

    name: ServiceName
    metadata: MetaData
    migrations: Path | None  # None: the service keeps no tables of its own (intake)
    subscriptions: list[str] = field(default_factory=list)  # base topic names
    handlers: Mapping[str, Handler] = field(default_factory=dict)
    batch_handlers: Mapping[str, BatchHandler] = field(default_factory=dict)
    loops: list[BackgroundLoop] = field(default_factory=list)
    # False: the service does its work without Postgres (intake: API keys from its cache),
    # so it starts and stays ready while Postgres is down, and reports it as degraded.
    needs_postgres: bool = True
    # Tables pruned past their retention (services/<name>/retention.py); the inbox is added.
    retention: list[PruneTarget] = field(default_factory=list)


class ServiceRuntime:
    def __init__(self, spec: ServiceSpec, settings: Settings) -> None:
        self.spec = spec
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        self.engine: AsyncEngine = make_engine(settings)
        self.outbox: Table = _shared_table(spec.metadata, spec.name, "outbox", outbox_table)
        self.inbox: Table = _shared_table(spec.metadata, spec.name, "inbox", inbox_table)
        self.key_store = KeyStore(
            engine=self.engine,
            admin_key=settings.admin_key,
            stale_s=settings.api_key_stale_s,
            unknown_ttl_s=settings.api_key_unknown_ttl_s,
            changes_poll_s=settings.api_key_changes_poll_s,
        )
        # aiokafka clients bind to the running loop, so they are made in start().
        self.producer: AIOKafkaProducer
        self.relay: OutboxRelay
        self.consumer: ConsumerRunner | None = None
        self.started = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # --- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        self.producer = make_producer(self.settings)
        self.relay = OutboxRelay(
            engine=self.engine,
            outbox=self.outbox,
            producer=self.producer,
            batch_size=self.settings.outbox_batch_size,
            idle_poll_s=self.settings.outbox_idle_poll_ms / 1000,
        )
        self._tasks.append(asyncio.create_task(self._boot(), name=f"{self.spec.name}-boot"))

    async def stop(self) -> None:
        """Let the consumer end at its next look at the stop event, then cancel the loops.

        Ending by itself, the consumer leaves its group, so its partitions move to the other
        instances at once; cancelled mid-poll, aiokafka skips the leave and they wait for the
        session timeout.
        """
        self._stop.set()
        consumer = [task for task in self._tasks if task.get_name() == "consumer"]
        if consumer:
            await asyncio.wait(consumer, timeout=_STOP_GRACE_S)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self.producer.stop()
        await self.engine.dispose()

    async def _boot(self) -> None:
        if self.spec.needs_postgres:
            await self._retry("postgres", self._prepare_database)
        else:
            await self._prepare_database_or_carry_on()
        self._spawn("api-key-changes", self.key_store.follow_changes)
        await self._retry("kafka", self.producer.start)
        if self.spec.migrations is not None:
            self._spawn("outbox-relay", self.relay.run)
            self._spawn("retention", self._prune_periodically)
        if self.spec.subscriptions:
            self.consumer = ConsumerRunner(
                group_id=self.topics.group(self.spec.name),
                topics=[self.topics.name(t) for t in self.spec.subscriptions],
                handlers=self.spec.handlers,
                batch_handlers=self.spec.batch_handlers,
                engine=self.engine,
                inbox=self.inbox,
                outbox=self.outbox,
                topic_names=self.topics,
                producer=self.producer,
                bootstrap=self.settings.kafka_bootstrap,
                source=self.spec.name,
                batch_size=self.settings.consumer_batch_size,
                poll_ms=self.settings.consumer_poll_ms,
                fetch_max_wait_ms=self.settings.consumer_fetch_max_wait_ms,
                after_commit=self.relay.wake,
                membership=GroupMembership.of(self.settings),
                stall_s=self.settings.consumer_stall_s,
            )
            self._spawn("consumer", self.consumer.run)
        for loop in self.spec.loops:
            self._spawn(loop.__name__, functools.partial(loop, self))
        self.started.set()
        log.info("service_started", kafka=self.settings.kafka_bootstrap)

    async def _prepare_database_or_carry_on(self) -> None:
        """Migrate if Postgres answers; if not, start without it and keep trying in the background."""
        try:
            await self._prepare_database()
        except Exception as exc:
            log.warning(
                "dependency_unavailable", dependency="postgres", error=str(exc)[:300], starting_without=True
            )
            prepare = self._retry("postgres", self._prepare_database)
            self._tasks.append(asyncio.create_task(prepare, name=f"{self.spec.name}-postgres"))

    async def _prepare_database(self) -> None:
        await ping(self.engine)
        await migrate(self.engine, schema=AUTH_SCHEMA, versions_dir=AUTH_MIGRATIONS)
        if self.spec.migrations is not None:
            await migrate(self.engine, schema=self.spec.name, versions_dir=self.spec.migrations)

    async def _retry(self, what: str, step: Callable[[], Awaitable[None]]) -> None:
        delay = 0.5
        while True:
            try:
                await step()
                return
            except Exception as exc:
                log.warning("dependency_unavailable", dependency=what, error=str(exc)[:300], retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _spawn(self, name: str, loop: Callable[[asyncio.Event], Awaitable[None]]) -> None:
        self._tasks.append(asyncio.create_task(self._supervise(name, loop), name=name))

    async def _supervise(self, name: str, loop: Callable[[asyncio.Event], Awaitable[None]]) -> None:
        """Keep a background loop alive across outages: restart it with backoff."""
        delay = 0.5
        while not self._stop.is_set():
            try:
                await loop(self._stop)
                delay = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("loop_crashed", loop=name, error=str(exc)[:300], restart_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _prune_periodically(self, stop: asyncio.Event) -> None:
        """Prune what is past its retention a minute after start-up (not an interval later, so
        instances restarted more often than hourly still prune), then every
        LEADFLOW_RETENTION_INTERVAL_S."""
        wait = min(_FIRST_PRUNE_S, self.settings.retention_interval_s)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait)
            if not stop.is_set():
                await self.prune(now=utcnow())
            wait = self.settings.retention_interval_s

    async def prune(self, *, now: datetime, dry_run: bool = False) -> list[Pruned]:
        """Prune this service's tables as of `now` (the retention job's one run)."""
        return await prune_service(
            self.settings,
            service=self.spec.name,
            targets=[*self.spec.retention, inbox_target(self.inbox)],
            topics=[self.topics.name(t) for t in self.spec.subscriptions],
            now=now,
            dry_run=dry_run,
        )

    # --- what handlers and routes use ---------------------------------------

    @contextlib.asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        """One transaction; events emitted inside go out after it commits."""
        async with unit_of_work(
            self.engine, outbox=self.outbox, topics=self.topics, source=self.spec.name
        ) as uow:
            yield uow
        if uow.emitted:
            self.relay.wake()

    async def readiness(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            await asyncio.wait_for(ping(self.engine), timeout=2.0)
            checks["postgres"] = "ok"
        except Exception as exc:
            checks["postgres"] = f"unavailable: {type(exc).__name__}"
        try:
            ok = await asyncio.wait_for(self.producer.client.force_metadata_update(), timeout=2.0)
            checks["kafka"] = "ok" if ok and self.started.is_set() else "unavailable"
        except Exception as exc:
            checks["kafka"] = f"unavailable: {type(exc).__name__}"
        if not self.spec.needs_postgres and checks["postgres"] != "ok":
            checks["postgres"] = f"degraded: {checks['postgres']} (API keys from cache)"
        if self.spec.subscriptions:
            checks["consumer"] = self.consumer.health() if self.consumer else "starting"
        return checks

    def ready(self, checks: Mapping[str, str]) -> bool:
        """Ready when every check is ok, or only degraded (a dependency the service can do without)."""
        return all(value == "ok" or value.startswith("degraded") for value in checks.values())


def _shared_table(
    metadata: MetaData, schema: str, name: str, define: Callable[[MetaData, str], Table]
) -> Table:
    """The service's outbox or inbox, defined once per metadata (apps may be built many times)."""
    existing = metadata.tables.get(f"{schema}.{name}")
    return existing if existing is not None else define(metadata, schema)
