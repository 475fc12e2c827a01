"""`leadflow feedback rebuild`: feedback's facts rebuilt from lead.lifecycle."""

from __future__ import annotations

from services.feedback import store as feedback_store
from services.feedback.rebuild import RebuildSummary, rebuild
from shared.db import make_engine, migrate
from shared.settings import Settings


async def rebuild_feedback(settings: Settings, *, force: bool = False) -> RebuildSummary:
    """Replay lead.lifecycle into feedback's facts, in one transaction (see services.feedback.rebuild);
    refused (HistoryShorterThanFacts, rolled back) when the topic yields fewer handoffs, unless `force`."""
    engine = make_engine(settings, bounded=False)
    try:
        await migrate(engine, schema="feedback", versions_dir=feedback_store.MIGRATIONS)
        async with engine.begin() as conn:
            return await rebuild(settings, conn, force=force)
    finally:
        await engine.dispose()
