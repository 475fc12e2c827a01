"""`leadflow backtest`: stored history replayed through two models, nothing emitted."""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime

from services.scoring import store as scoring_store
from services.scoring.accounts import store as account_store
from services.scoring.backtest import BacktestReport, BacktestTally
from services.scoring.model import ScoringModel
from shared.db import make_engine
from shared.settings import Settings


async def backtest(
    settings: Settings, *, current: ScoringModel, candidate: ScoringModel, since: datetime
) -> BacktestReport:
    """Replay stored history through both models, streamed one lead at a time; emits nothing."""
    engine = make_engine(settings, bounded=False)
    started = time.perf_counter()
    try:
        async with engine.connect() as conn:
            book = await account_store.account_book(conn)  # accounts: a few KB each, not history
            tally = BacktestTally(current, candidate, since=since, accounts=book)
            # One lead at a time off one streamed scan: memory stays flat however long the history.
            async for history in scoring_store.stream_histories(conn, since=since):
                tally.add(history)
        return dataclasses.replace(tally.report(), elapsed_s=time.perf_counter() - started)
    finally:
        await engine.dispose()
