"""backtest: a candidate model against the current one over a seeded million-event history,
beside streaming the same history out of Postgres alone."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from bench.seeding import seed_history
from leadflow.admin.backtest import backtest
from services.scoring import store as scoring_store
from services.scoring.config_files import load_model
from shared.db import make_engine
from shared.envelope import utcnow
from shared.settings import Settings

BACKTEST_EVENTS = 1_000_000


@dataclass
class BacktestTiming:
    leads: int
    events: int
    read_s: float
    backtest_s: float


async def backtest_timing(settings: Settings, db_dsn: str) -> BacktestTiming:
    """Seconds to backtest a candidate model over the whole history, beside reading that history alone."""
    leads, _ = await seed_history(db_dsn, events=BACKTEST_EVENTS)
    since = utcnow() - timedelta(days=90)
    engine = make_engine(settings, bounded=False)
    try:
        started = time.perf_counter()
        async with engine.connect() as conn:
            read = sum([1 async for _ in scoring_store.stream_histories(conn, since=since)])
        read_s = time.perf_counter() - started
    finally:
        await engine.dispose()
    assert read >= leads
    current = load_model(settings.config_file("scoring-model.yaml"))
    candidate = current.model_copy(
        update={
            "version": "candidate",
            "mql": current.mql.model_copy(update={"min_score": current.mql.min_score - 10}),
        }
    )
    report = await backtest(settings, current=current, candidate=candidate, since=since)
    return BacktestTiming(leads=read, events=report.events, read_s=read_s, backtest_s=report.elapsed_s)
