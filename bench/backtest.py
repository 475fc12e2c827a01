"""backtest: a candidate model against the current one over a seeded million-event history,
beside streaming the same history out of Postgres alone."""

from __future__ import annotations

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
    """Peak RSS of `leadflow backtest --since 90d` as its own process over the seeded history.

    Read from the child's /proc VmHWM (its own address space's high-water mark), polled until it
    exits: rusage's ru_maxrss would not do, as Linux carries the parent's maximum across fork and
    exec, so a child of this bench (which just seeded a million rows) reports the bench's peak.
    """
    current = (ROOT / "config" / "scoring-model.yaml").read_text()
    candidate = work / "candidate-model.yaml"
    candidate.write_text(
        current.replace('version: "', 'version: "candidate-', 1).replace("min_score: 50", "min_score: 40", 1)
    )
    argv = [sys.executable, "-m", "leadflow", "backtest", "--model", str(candidate), "--since", "90d"]
    peak_mb, seconds, returncode = peak_rss_of(argv, env)
    if returncode != 0:
        raise RuntimeError(f"leadflow backtest exited with {returncode}")
    return BacktestMemory(peak_rss_mb=peak_mb, seconds=seconds)


def peak_rss_of(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Run a command as its own process: (peak RSS in MB, seconds, exit code), the peak read
    from its /proc VmHWM, polled until it exits (see backtest_peak_rss for why not rusage)."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak_kb = 0
    while process.poll() is None:
        peak_kb = max(peak_kb, _high_water_kb(process.pid))
        time.sleep(0.05)
    return peak_kb / 1024, time.perf_counter() - started, process.returncode


def _high_water_kb(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # it just exited
        return 0
    line = next((line for line in status.splitlines() if line.startswith("VmHWM:")), None)
    return int(line.split()[1]) if line else 0
