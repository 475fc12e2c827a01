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
import contextlib
import itertools
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from pydantic import ValidationError
from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.envelope import Envelope
from shared.events import parse_data
from shared.logging import get_logger, trace_context
from shared.metrics import CONSUMER_LAG, MESSAGES_CONSUMED
from shared.outbox import record_deliveries
from shared.topics import Topics
from shared.unit_of_work import UnitOfWork, unit_of_work

log = get_logger(__name__)

Handler = Callable[[UnitOfWork, Envelope, Any], Awaitable[None]]
# Handles many messages of one type at once (one query per batch, not per message).
BatchHandler = Callable[[UnitOfWork, list[tuple[Envelope, Any]]], Awaitable[None]]


@dataclass(frozen=True)
class Message:
    record: ConsumerRecord
    envelope: Envelope


def _runs_by_handler(
    messages: Iterable[Message], handlers: Mapping[str, BatchHandler]
) -> Iterator[tuple[BatchHandler, list[Message]]]:
    """Consecutive messages that go to one batch handler, in order.

    A handler registered for several types (feedback's projection, handoff's webhook
    enqueue) gets an interleaved stream of them as one run, not a run per type change.
    """
    for handler, run in itertools.groupby(messages, key=lambda m: handlers[m.envelope.type]):
        yield handler, list(run)


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
        batch_handlers: Mapping[str, BatchHandler] | None = None,
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
        self.batch_handlers = batch_handlers or {}
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
        self._lag_partitions: set[TopicPartition] = set()

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
                if batch:
                    await self._handle_with_retry(batch, stop)
                    await self._commit(consumer, batch)
                await self._record_lag(consumer)
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
        """Handle a batch in one transaction; dead letters go out before it commits.

        Publishing them first means a crash in between repeats a dead letter
        rather than losing it (the inbox then marks the message as done).
        """
        transaction = unit_of_work(
            self._engine, outbox=self._outbox, topics=self._topic_names, source=self._source
        )
        async with transaction as uow:
            messages, dead = self._parse(records)
            fresh = await self._first_deliveries(uow.conn, messages)
            for batch_handler, group in _runs_by_handler(
                (m for m in fresh if m.envelope.type in self.batch_handlers), self.batch_handlers
            ):
                dead += await self._handle_group(uow, batch_handler, group)
            for message in fresh:
                handler = self.handlers.get(message.envelope.type)
                if handler is not None and message.envelope.type not in self.batch_handlers:
                    error = await self._handle_one(uow, message, handler)
                    if error is not None:
                        dead.append((message.record, error))
            for record, error in dead:
                await self._dead_letter(record, error)
        if uow.emitted:
            self._after_commit()

    def _parse(
        self, records: list[ConsumerRecord]
    ) -> tuple[list[Message], list[tuple[ConsumerRecord, BaseException]]]:
        messages: list[Message] = []
        dead: list[tuple[ConsumerRecord, BaseException]] = []
        for record in records:
            try:
                envelope = Envelope.from_bytes(record.value)
            except Exception as exc:
                dead.append((record, exc))
                continue
            if envelope.type in self.handlers or envelope.type in self.batch_handlers:
                messages.append(Message(record, envelope))
            else:
                MESSAGES_CONSUMED.labels(self.group_id, "ignored").inc()
        return messages, dead

    async def _first_deliveries(self, conn: AsyncConnection, messages: list[Message]) -> list[Message]:
        """The messages not processed before (the inbox remembers every id), in order, once each."""
        if not messages:
            return []
        new_ids = await record_deliveries(
            conn, self._inbox, [(m.envelope.id, m.record.topic) for m in messages]
        )
        fresh = []
        for message in messages:
            if message.envelope.id in new_ids:
                new_ids.discard(message.envelope.id)
                fresh.append(message)
            else:
                MESSAGES_CONSUMED.labels(self.group_id, "duplicate").inc()
        return fresh

    async def _handle_group(
        self, uow: UnitOfWork, handler: BatchHandler, group: list[Message]
    ) -> list[tuple[ConsumerRecord, BaseException]]:
        """Run a batch handler on a run of its messages; on a bad message, isolate it."""
        dead: list[tuple[ConsumerRecord, BaseException]] = []
        items: list[tuple[Envelope, Any]] = []
        for message in group:
            try:
                items.append((message.envelope, parse_data(message.envelope)))
            except Exception as exc:
                dead.append((message.record, exc))
        emitted_before = len(uow.emitted)
        try:
            async with uow.conn.begin_nested():
                await handler(uow, items)
            MESSAGES_CONSUMED.labels(self.group_id, "handled").inc(len(items))
            return dead
        except Exception as exc:
            del uow.emitted[emitted_before:]
            if is_transient(exc):
                raise
        # One of them is poison: handle each alone so only it goes to the DLQ.
        parsed = {id(envelope) for envelope, _ in items}
        for message in group:
            if id(message.envelope) in parsed:
                error = await self._handle_one(uow, message, lambda u, e, d: handler(u, [(e, d)]))
                if error is not None:
                    dead.append((message.record, error))
        return dead

    async def _handle_one(self, uow: UnitOfWork, message: Message, handler: Handler) -> BaseException | None:
        envelope = message.envelope
        emitted_before = len(uow.emitted)
        with trace_context(envelope.trace_id):
            try:
                async with uow.conn.begin_nested():
                    await handler(uow, envelope, parse_data(envelope))
            except Exception as exc:
                del uow.emitted[emitted_before:]
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

    async def _record_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Set the lag of each partition this instance owns; forget those it no longer owns.

        Lag is the highwater of the last fetch minus the position, which after
        the offset commit is the committed offset. A partition not fetched yet
        (no highwater) is left out until it is.
        """
        owned = consumer.assignment()
        for tp in self._lag_partitions - owned:
            with contextlib.suppress(KeyError):
                CONSUMER_LAG.remove(self.group_id, tp.topic, str(tp.partition))
        self._lag_partitions &= owned
        for tp in owned:
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            try:
                position = await consumer.position(tp)
            except IllegalStateError:  # revoked by a rebalance meanwhile
                continue
            CONSUMER_LAG.labels(self.group_id, tp.topic, str(tp.partition)).set(max(highwater - position, 0))
            self._lag_partitions.add(tp)
