"""The Kafka consumer runner: at-least-once, one transaction per batch, DLQ for poison.

For each batch: open one transaction; for each message, inside a savepoint,
record its id in the inbox (a redelivery stops here) and run its handler; a
message that fails validation or handling is rolled back to its savepoint and
sent to `<topic>.dlq` with the error; commit; publish the dead letters; then
commit the Kafka offsets. A crash anywhere before the offset commit redelivers
the batch, and the inbox makes the replay change nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from pydantic import ValidationError
from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.envelope import Envelope
from shared.events import EventData, parse_data
from shared.logging import get_logger, trace_context
from shared.metrics import CONSUMER_LAG, MESSAGES_CONSUMED
from shared.outbox import first_delivery
from shared.topics import Topics
from shared.unit_of_work import UnitOfWork

log = get_logger(__name__)

Handler = Callable[[UnitOfWork, Envelope, Any], Awaitable[None]]

# Postgres SQLSTATEs worth retrying rather than dead-lettering.
_TRANSIENT_SQLSTATES = {"40001", "40P01", "57P01", "57P02", "57P03", "08000", "08003", "08006"}


def describe(error: BaseException) -> str:
    """The error without the input it was about: validation errors echo their input, which may hold PII."""
    if isinstance(error, ValidationError):
        problems = error.errors(include_input=False, include_url=False)
        return "; ".join(f"{'.'.join(map(str, p['loc'])) or 'message'}: {p['msg']}" for p in problems)[:2000]
    return str(error)[:2000]


def is_transient(exc: BaseException) -> bool:
    """True for outages (retry the batch), False for a bad message (dead-letter it)."""
    if isinstance(exc, (OSError, asyncio.TimeoutError, KafkaError, InterfaceError, OperationalError)):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        return sqlstate in _TRANSIENT_SQLSTATES
    return False


class ConsumerRunner:
    def __init__(
        self,
        *,
        group_id: str,
        topics: list[str],
        handlers: Mapping[str, Handler],
        engine: AsyncEngine,
        inbox: Table,
        outbox: Table,
        topic_names: Topics,
        producer: AIOKafkaProducer,
        bootstrap: str,
        source: str,
        batch_size: int = 500,
        poll_ms: int = 200,
        fetch_max_wait_ms: int = 100,
        after_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self.group_id = group_id
        self.topics = topics
        self.handlers = handlers
        self._engine = engine
        self._inbox = inbox
        self._outbox = outbox
        self._topic_names = topic_names
        self._producer = producer
        self._bootstrap = bootstrap
        self._source = source
        self._batch_size = batch_size
        self._poll_ms = poll_ms
        self._fetch_max_wait_ms = fetch_max_wait_ms
        self._after_commit = after_commit
        self.running = False

    async def run(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self._bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self._batch_size,
            fetch_max_wait_ms=self._fetch_max_wait_ms,
        )
        await consumer.start()
        self.running = True
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=self._poll_ms, max_records=self._batch_size)
                if not batch:
                    continue
                await self._handle_with_retry(batch, stop)
                await self._commit(consumer, batch)
                self._record_lag(consumer, batch)
        finally:
            self.running = False
            await consumer.stop()

    async def _handle_with_retry(
        self, batch: dict[TopicPartition, list[ConsumerRecord]], stop: asyncio.Event
    ) -> None:
        records = [record for records in batch.values() for record in records]
        delay = 0.5
        while True:
            try:
                await self.handle_batch(records)
                return
            except Exception as exc:
                if not is_transient(exc) or stop.is_set():
                    raise
                log.warning("consumer_batch_retry", group=self.group_id, error=str(exc), delay_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def handle_batch(self, records: list[ConsumerRecord]) -> None:
        dead: list[tuple[ConsumerRecord, BaseException]] = []
        async with self._engine.begin() as conn:
            uow = UnitOfWork(conn=conn, outbox=self._outbox, topics=self._topic_names, source=self._source)
            for record in records:
                error = await self._handle_one(uow, record)
                if error is not None:
                    dead.append((record, error))
        for record, error in dead:
            await self._dead_letter(record, error)
        if uow.emitted:
            self._after_commit()

    async def _handle_one(self, uow: UnitOfWork, record: ConsumerRecord) -> BaseException | None:
        try:
            envelope = Envelope.from_bytes(record.value)
        except Exception as exc:
            return exc
        handler = self.handlers.get(envelope.type)
        if handler is None:
            MESSAGES_CONSUMED.labels(self.group_id, "ignored").inc()
            return None
        with trace_context(envelope.trace_id):
            try:
                async with uow.conn.begin_nested():
                    emitted_before = len(uow.emitted)
                    try:
                        if not await first_delivery(
                            uow.conn, self._inbox, message_id=envelope.id, topic=record.topic
                        ):
                            MESSAGES_CONSUMED.labels(self.group_id, "duplicate").inc()
                            return None
                        data: EventData = parse_data(envelope)
                        await handler(uow, envelope, data)
                    except BaseException:
                        del uow.emitted[emitted_before:]
                        raise
            except Exception as exc:
                if is_transient(exc):
                    raise
                log.warning(
                    "message_dead_lettered",
                    group=self.group_id,
                    type=envelope.type,
                    message_id=envelope.id,
                    error=describe(exc)[:500],
                )
                return exc
        MESSAGES_CONSUMED.labels(self.group_id, "handled").inc()
        return None

    async def _dead_letter(self, record: ConsumerRecord, error: BaseException) -> None:
        headers = [
            ("error", describe(error).encode()),
            ("error_type", type(error).__name__.encode()),
            ("source_topic", record.topic.encode()),
            ("source_partition", str(record.partition).encode()),
            ("source_offset", str(record.offset).encode()),
            ("consumer_group", self.group_id.encode()),
        ]
        await self._producer.send_and_wait(
            self._topic_names.dlq(record.topic), value=record.value, key=record.key, headers=headers
        )
        MESSAGES_CONSUMED.labels(self.group_id, "dead_lettered").inc()

    async def _commit(
        self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list[ConsumerRecord]]
    ) -> None:
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items() if records}
        try:
            await consumer.commit(offsets)
        except CommitFailedError as exc:
            # The group rebalanced: the new owner replays these, the inbox absorbs them.
            log.warning("offset_commit_failed", group=self.group_id, error=str(exc))

    def _record_lag(
        self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list[ConsumerRecord]]
    ) -> None:
        for tp, records in batch.items():
            highwater = consumer.highwater(tp)
            if highwater is not None and records:
                CONSUMER_LAG.labels(self.group_id, tp.topic).set(max(highwater - records[-1].offset - 1, 0))
