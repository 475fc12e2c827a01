"""`leadflow rescore`: every lead recomputed under a model, the resulting events published."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from services.scoring import store as scoring_store
from services.scoring.model import ScoringModel
from services.scoring.rescore import RescoreSummary, rescore_all
from shared.db import make_engine, migrate
from shared.kafka import make_producer
from shared.outbox import OutboxRelay
from shared.settings import Settings
from shared.topics import Topics
from shared.unit_of_work import unit_of_work
from shared.vault import PRIVACY_MIGRATIONS, PRIVACY_SCHEMA, Vault


async def rescore(settings: Settings, model: ScoringModel) -> RescoreSummary:
    """Rescore every lead under `model`, then publish the events that caused (if any)."""
    engine = make_engine(settings, bounded=False)
    try:
        await migrate(engine, schema=scoring_store.SCHEMA, versions_dir=scoring_store.MIGRATIONS)
        await migrate(engine, schema=PRIVACY_SCHEMA, versions_dir=PRIVACY_MIGRATIONS)
        topics = Topics(settings.topic_prefix)
        vault = Vault.of(settings)
        summary = await rescore_all(
            lambda: unit_of_work(
                engine, outbox=scoring_store.outbox, topics=topics, source="scoring", vault=vault
            ),
            model,
        )
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
