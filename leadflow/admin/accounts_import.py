"""`leadflow accounts import`: a CRM export of accounts into scoring, idempotent by external id."""

from __future__ import annotations

from services.scoring import store as scoring_store
from services.scoring.accounts.handlers import ImportSummary, import_accounts
from services.scoring.accounts.imports import AccountRecord
from shared.db import make_engine, migrate
from shared.settings import Settings
from shared.topics import Topics
from shared.unit_of_work import unit_of_work

BATCH = 1_000  # accounts per transaction


async def import_file(settings: Settings, records: list[AccountRecord]) -> ImportSummary:
    """Import the parsed records in batches; each batch commits on its own."""
    engine = make_engine(settings, bounded=False)
    created = updated = 0
    taken: list[tuple[str, str]] = []
    try:
        await migrate(engine, schema=scoring_store.SCHEMA, versions_dir=scoring_store.MIGRATIONS)
        topics = Topics(settings.topic_prefix)
        for start in range(0, len(records), BATCH):
            async with unit_of_work(
                engine, outbox=scoring_store.outbox, topics=topics, source="scoring"
            ) as uow:
                summary = await import_accounts(uow, records[start : start + BATCH])
            created, updated = created + summary.created, updated + summary.updated
            taken += summary.domains_taken
        return ImportSummary(created, updated, taken)
    finally:
        await engine.dispose()
