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
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError, RecordTooLargeError
from pydantic import ValidationError
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.envelope import Envelope
from shared.events import parse_data
from shared.logging import get_logger, trace_context
from shared.metrics import CONSUMER_LAG, MESSAGES_CONSUMED
from shared.outages import CONFLICT_SQLSTATES, is_outage, kafka_error_is_transient, sqlstate_of
from shared.outbox import record_deliveries
from shared.settings import Settings
from shared.topics import Topics
from shared.unit_of_work import UnitOfWork, unit_of_work
from shared.vault import Vault

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


def describe(error: BaseException) -> str:
    """The error without the input it was about: validation errors echo their input, which may hold PII."""
    if isinstance(error, ValidationError):
        problems = error.errors(include_input=False, include_url=False)
        return "; ".join(f"{'.'.join(map(str, p['loc'])) or 'message'}: {p['msg']}" for p in problems)[:2000]
    return str(error)[:2000]


def is_transient(exc: BaseException) -> bool:
    """True for outages and conflicts (retry the batch), False for a bad message (dead-letter it)
    and for a Kafka error no retry fixes (a record too large, an invalid topic, a refusal)."""
    if isinstance(exc, KafkaError):
        return kafka_error_is_transient(exc)
    return is_outage(exc) or sqlstate_of(exc) in CONFLICT_SQLSTATES


MAX_REFERENCED_KEY = 1024  # bytes of a record's key a dead-letter reference repeats


def dead_letter_reference(
    *, topic: str, partition: int, offset: int, size: int | None, key: bytes | None, error: str, cause: str
) -> bytes:
    """What goes to the DLQ when the record itself cannot: where to find it, and why."""
    reference = {
        "dead_letter": "reference",
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "size": size,
        "key": key[:MAX_REFERENCED_KEY].decode(errors="replace") if key is not None else None,
        "error": error,
        "not_dead_lettered_whole": cause,
    }
    return orjson.dumps(reference)


@dataclass(frozen=True)
class GroupMembership:
    """How a consumer lives in its group: how soon a silent one loses its partitions."""

    session_timeout_ms: int = 6000
    heartbeat_interval_ms: int = 1000
    max_poll_interval_ms: int = 60_000
    instance_id: str | None = None  # static membership; None: a stopped consumer leaves at once

    @classmethod
    def of(cls, settings: Settings) -> GroupMembership:
        return cls(
            session_timeout_ms=settings.consumer_session_timeout_ms,
            heartbeat_interval_ms=settings.consumer_heartbeat_interval_ms,
            max_poll_interval_ms=settings.consumer_max_poll_interval_ms,
            instance_id=settings.consumer_instance_id,
        )


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
        membership: GroupMembership | None = None,
        stall_s: float = 60.0,
        vault: Vault | None = None,
    ) -> None:
        self.group_id = group_id
        self._vault = vault
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
        self._membership = membership or GroupMembership()
        self._stall_s = stall_s
        self.running = False
        self._lag_partitions: set[TopicPartition] = set()
        # Progress, for readiness: records fetched and not yet committed, the lag last seen,
        # and when the group's position last moved (or the consumer was caught up).
        self._in_hand = 0
        self._lag = 0
        self._progress_at = time.monotonic()

    def health(self) -> str:
        """`ok`, `starting`, or `stalled: ...` once lag has not moved for `stall_s` seconds."""
        behind = self._lag + self._in_hand
        idle = time.monotonic() - self._progress_at
        if behind > 0 and idle > self._stall_s:
            return f"stalled: lag {behind}, no progress for {idle:.0f} s"
        return "ok" if self.running else "starting"

    async def run(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self._bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self._batch_size,
            fetch_max_wait_ms=self._fetch_max_wait_ms,
            group_instance_id=self._membership.instance_id,
            session_timeout_ms=self._membership.session_timeout_ms,
            heartbeat_interval_ms=self._membership.heartbeat_interval_ms,
            max_poll_interval_ms=self._membership.max_poll_interval_ms,
        )
        await consumer.start()
        self.running = True
        try:
            while not stop.is_set():
                try:
                    batch = await consumer.getmany(timeout_ms=self._poll_ms, max_records=self._batch_size)
                except RecordTooLargeError as exc:
                    await self._skip_unfetchable(consumer, exc)
                    continue
                if batch:
                    self._in_hand = sum(len(records) for records in batch.values())
                    await self._handle_with_retry(batch, stop)
                    await self._commit(consumer, {tp: rs[-1].offset + 1 for tp, rs in batch.items() if rs})
                    self._in_hand = 0
                    self._progress_at = time.monotonic()
                await self._record_lag(consumer)
                if not batch and self._lag == 0:
                    self._progress_at = time.monotonic()
        finally:
            self.running = False
            await consumer.stop()  # leaves the group (unless static), so a restart rebalances at once

    async def _skip_unfetchable(self, consumer: AIOKafkaConsumer, exc: RecordTooLargeError) -> None:
        """A record larger than the consumer may fetch: dead-letter where it is, and go past it."""
        _, tp, offset, _ = exc.args
        reference = dead_letter_reference(
            topic=tp.topic,
            partition=tp.partition,
            offset=offset,
            size=None,
            key=None,
            error="larger than the consumer's fetch size",
            cause="not fetched",
        )
        headers = [("dead_letter", b"reference"), ("error_type", b"RecordTooLargeError")]
        await self._producer.send_and_wait(self._topic_names.dlq(tp.topic), value=reference, headers=headers)
        MESSAGES_CONSUMED.labels(self.group_id, "dead_lettered").inc()
        log.warning(
            "message_dead_lettered", group=self.group_id, topic=tp.topic, offset=offset, error="too large"
        )
        await self._commit(consumer, {tp: offset + 1})

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
            self._engine,
            outbox=self._outbox,
            topics=self._topic_names,
            source=self._source,
            vault=self._vault,
        )
        async with transaction as uow:
            messages, dead = self._parse(records)
            fresh = await self._first_deliveries(uow.conn, messages)
            fresh = await self._opened(uow.conn, fresh, dead)
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

    async def _opened(
        self, conn: AsyncConnection, messages: list[Message], dead: list[tuple[ConsumerRecord, BaseException]]
    ) -> list[Message]:
        """The messages with their personal fields opened by the vault; those of an erased person
        are skipped (never handled, so nothing of them is recreated), an unopenable one is dead."""
        if self._vault is None or not messages:
            return messages
        opened: list[Message] = []
        for message, envelope in zip(
            messages, await self._vault.open_envelopes(conn, [m.envelope for m in messages]), strict=True
        ):
            if isinstance(envelope, BaseException):
                dead.append((message.record, envelope))
            elif envelope is None:
                MESSAGES_CONSUMED.labels(self.group_id, "erased").inc()
            else:
                opened.append(Message(message.record, envelope))
        return opened

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
        """The record to `<topic>.dlq` with the reason; a record the broker or the producer will
        not take (too large, say) goes as a reference to where it is, so the consumer moves on."""
        dlq = self._topic_names.dlq(record.topic)
        headers = [
            ("error", describe(error).encode()),
            ("error_type", type(error).__name__.encode()),
            ("source_topic", record.topic.encode()),
            ("source_partition", str(record.partition).encode()),
            ("source_offset", str(record.offset).encode()),
            ("consumer_group", self.group_id.encode()),
        ]
        try:
            await self._producer.send_and_wait(dlq, value=record.value, key=record.key, headers=headers)
        except KafkaError as exc:
            if kafka_error_is_transient(exc):
                raise
            await self._dead_letter_reference(dlq, record, error, headers, cause=exc)
        MESSAGES_CONSUMED.labels(self.group_id, "dead_lettered").inc()

    async def _dead_letter_reference(
        self,
        dlq: str,
        record: ConsumerRecord,
        error: BaseException,
        headers: list[tuple[str, bytes]],
        *,
        cause: KafkaError,
    ) -> None:
        reference = dead_letter_reference(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            size=record.serialized_value_size,
            key=record.key,
            error=describe(error),
            cause=f"{type(cause).__name__}: {describe(cause)}",
        )
        key = record.key if record.key is None or len(record.key) <= MAX_REFERENCED_KEY else None
        try:
            await self._producer.send_and_wait(
                dlq, value=reference, key=key, headers=[("dead_letter", b"reference"), *headers]
            )
        except KafkaError as exc:
            if kafka_error_is_transient(exc):
                raise
            # Not even a reference goes out (the DLQ refuses us): say where the record is, and move on.
            log.error("dead_letter_failed", group=self.group_id, reference=reference.decode(), error=str(exc))

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
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
        lag = 0
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
            lag += max(highwater - position, 0)
        self._lag = lag
