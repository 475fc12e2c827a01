"""Operator tasks the CLI runs against the configured Kafka and Postgres."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.util
import time
from collections.abc import AsyncIterator
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine

from services.feedback import store as feedback_store
from services.feedback.rebuild import RebuildSummary, rebuild
from services.scoring import store as scoring_store
from services.scoring.backtest import BacktestReport, run_backtest
from services.scoring.model import ScoringModel
from services.scoring.rescore import RescoreSummary, rescore_all
from shared.auth import AUTH_MIGRATIONS, AUTH_SCHEMA, KeyStore, Scope
from shared.db import make_engine, migrate
from shared.kafka import ensure_topics, make_producer
from shared.outbox import OutboxRelay
from shared.settings import SERVICES, Settings
from shared.topics import Topics
from shared.unit_of_work import UnitOfWork


async def migrate_all(settings: Settings) -> None:
    await ensure_topics(settings)
    engine = make_engine(settings)
    try:
        await migrate(engine, schema=AUTH_SCHEMA, versions_dir=AUTH_MIGRATIONS)
        for name in SERVICES:
            if importlib.util.find_spec(f"services.{name}.store") is None:
                continue  # a service without tables of its own (intake)
            versions = importlib.import_module(f"services.{name}.store").MIGRATIONS
            await migrate(engine, schema=name, versions_dir=versions)
    finally:
        await engine.dispose()


async def rebuild_feedback(settings: Settings) -> RebuildSummary:
    """Replay lead.lifecycle into feedback's facts, in one transaction (see services.feedback.rebuild)."""
    engine = make_engine(settings)
    try:
        await migrate(engine, schema="feedback", versions_dir=feedback_store.MIGRATIONS)
        async with engine.begin() as conn:
            return await rebuild(settings, conn)
    finally:
        await engine.dispose()


async def create_key(
    settings: Settings, *, name: str, scopes: list[Scope], owner: str | None
) -> tuple[str, str]:
    engine = make_engine(settings)
    try:
        await migrate(engine, schema=AUTH_SCHEMA, versions_dir=AUTH_MIGRATIONS)
        return await KeyStore(engine=engine, admin_key=settings.admin_key).create(
            name=name, scopes=scopes, owner=owner
        )
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def _scoring_unit_of_work(engine: AsyncEngine, settings: Settings) -> AsyncIterator[UnitOfWork]:
    async with engine.begin() as conn:
        uow = UnitOfWork(
            conn=conn, outbox=scoring_store.outbox, topics=Topics(settings.topic_prefix), source="scoring"
        )
        yield uow
        await uow.flush()


async def rescore(settings: Settings, model: ScoringModel) -> RescoreSummary:
    """Rescore every lead under `model`, then publish the events that caused (if any)."""
    engine = make_engine(settings)
    try:
        await migrate(engine, schema=scoring_store.SCHEMA, versions_dir=scoring_store.MIGRATIONS)
        summary = await rescore_all(lambda: _scoring_unit_of_work(engine, settings), model)
        await _drain_outbox(engine, settings)
        return summary
    finally:
        await engine.dispose()


async def _drain_outbox(engine: AsyncEngine, settings: Settings) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        relay = OutboxRelay(
            engine=engine, outbox=scoring_store.outbox, producer=producer, batch_size=500, idle_poll_s=0.1
        )
        while await relay.publish_once():
            pass
    finally:
        await producer.stop()


async def backtest(
    settings: Settings, *, current: ScoringModel, candidate: ScoringModel, since: datetime
) -> BacktestReport:
    """Replay stored history through both models; emits nothing."""
    engine = make_engine(settings)
    started = time.perf_counter()
    try:
        async with engine.connect() as conn:
            histories = [h async for h in scoring_store.stream_histories(conn, since=since)]
        report = run_backtest(current, candidate, histories, since=since)
        return dataclasses.replace(report, elapsed_s=time.perf_counter() - started)
    finally:
        await engine.dispose()


async def replay(settings: Settings, *, topic: str, group: str, since: datetime | None) -> dict[int, int]:
    """Rewind `group` on `topic` to `since` (or to the beginning): its service re-reads from there.

    Run it while the group's consumers are stopped. Consumers are idempotent (the
    inbox), so a replay changes only what was lost, e.g. after restoring a backup.
    Returns the offset each partition now starts from.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        await consumer.topics()  # loads the metadata that partitions_for_topic reads
        partitions = sorted(consumer.partitions_for_topic(topic) or [])
        if not partitions:
            raise ValueError(f"no topic {topic!r} on {settings.kafka_bootstrap}")
        assigned = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(assigned)
        if since is None:
            targets = await consumer.beginning_offsets(assigned)
        else:
            found = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in assigned})
            ends = await consumer.end_offsets(assigned)
            targets = {tp: found[tp].offset if found.get(tp) else ends[tp] for tp in assigned}
        await consumer.commit(targets)
        return {tp.partition: offset for tp, offset in targets.items()}
    finally:
        await consumer.stop()
