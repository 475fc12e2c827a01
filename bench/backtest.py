"""backtest: a candidate model against the current one over a seeded million-event history,
beside streaming the same history out of Postgres alone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from bench.seeding import seed_history
from bench.stack import ROOT
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


@dataclass
class BacktestMemory:
    peak_rss_mb: float
    seconds: float


def backtest_peak_rss(env: dict[str, str], work: Path) -> BacktestMemory:
    """Peak RSS of `leadflow backtest --since 90d` as its own process over the seeded history
    (the kernel's high-water mark for that one child, from wait4)."""
    current = (ROOT / "config" / "scoring-model.yaml").read_text()
    candidate = work / "candidate-model.yaml"
    candidate.write_text(
        current.replace('version: "', 'version: "candidate-', 1).replace("min_score: 50", "min_score: 40", 1)
    )
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "leadflow", "backtest", "--model", str(candidate), "--since", "90d"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"leadflow backtest exited with {process.returncode}")
    return BacktestMemory(peak_rss_mb=usage.ru_maxrss / 1024, seconds=time.perf_counter() - started)
