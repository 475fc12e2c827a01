"""How fast one service process works off a backlog (scoring's lead events, feedback's lifecycle),
and the CPU it and Postgres spend per item (a figure a busy shared machine moves less)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import psutil

from bench.stack import serve
from leadflow.devstack.processes import stop_process


@dataclass(frozen=True)
class Drain:
    rate: float  # items/s, from the first item done to the last
    cpu_us: float  # the service process's CPU (user + system) per item, over the same span
    db_cpu_us: float  # Postgres' CPU (all its processes) per item, over the same span


async def drain_rate(
    service: str, env: dict[str, str], db_dsn: str, total: int, done: str, *args: Any
) -> float:
    """Items/s of one `service` process working off a backlog, from its first item to `total`, as
    counted by the query `done`."""
    return (await drain(service, env, db_dsn, total, done, *args)).rate


async def drain(service: str, env: dict[str, str], db_dsn: str, total: int, done: str, *args: Any) -> Drain:
    """`drain_rate`, with the CPU per item of the service process and of Postgres."""
    conn = await asyncpg.connect(db_dsn)
    postmaster = psutil.Process(await conn.fetchval("SELECT pg_backend_pid()")).parent()
    process = serve(service, env)
    try:
        service_cpu = psutil.Process(process.pid)
        started = None
        while True:
            count = await conn.fetchval(done, *args)
            if count and started is None:
                started = time.perf_counter(), _cpu(service_cpu), _cpus(postmaster)
            if count >= total:
                assert started is not None
                at, cpu, db_cpu = started
                elapsed = time.perf_counter() - at
                db_now = _cpus(postmaster)
                db_spent = sum(spent - db_cpu.get(pid, 0.0) for pid, spent in db_now.items())
                return Drain(
                    rate=total / elapsed,
                    cpu_us=(_cpu(service_cpu) - cpu) / total * 1e6,
                    db_cpu_us=db_spent / total * 1e6,
                )
            if process.poll() is not None:
                raise RuntimeError(f"{service} exited during the benchmark")
            await asyncio.sleep(0.05)
    finally:
        stop_process(process)
        await conn.close()


# How far scoring is through a backlog of lead events, in a few index look-ups: 0 before it stored
# any partition's first event, `total` once it stored every partition's last one (a partition is
# consumed in order), else the first events stored (at least 1: the drain has started). Counting
# the backlog's events (`event_id LIKE 'tag-%'`, 20 times a second) scanned the whole of
# lead_events, which grows with every drain and every seeded history: in Postgres' CPU it
# weighed more than what was measured, and more the larger the table (the later phases).
SCORING_DRAINED = """
SELECT CASE
    WHEN (SELECT count(*) FROM scoring.lead_events WHERE event_id = ANY($2::text[])) = cardinality($2::text[])
    THEN $3::int
    ELSE (SELECT count(*) FROM scoring.lead_events WHERE event_id = ANY($1::text[]))
END
"""


def ends_of_partitions(event_ids: list[str], placed: list[tuple[int, int]]) -> tuple[list[str], list[str]]:
    """The first and the last event id sent to each partition (placed: (partition, offset) of each)."""
    first: dict[int, tuple[int, str]] = {}
    last: dict[int, tuple[int, str]] = {}
    for event_id, (partition, offset) in zip(event_ids, placed, strict=True):
        if partition not in first or offset < first[partition][0]:
            first[partition] = (offset, event_id)
        if partition not in last or offset > last[partition][0]:
            last[partition] = (offset, event_id)
    return [e for _, e in first.values()], [e for _, e in last.values()]


async def scoring_drain(
    env: dict[str, str], db_dsn: str, event_ids: list[str], placed: list[tuple[int, int]]
) -> Drain:
    """`drain` of one scoring process over these lead events (ids, and where each was placed)."""
    first, last = ends_of_partitions(event_ids, placed)
    total = len(event_ids)
    return await drain("scoring", env, db_dsn, total, SCORING_DRAINED, first, last, total)


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _cpus(postmaster: psutil.Process) -> dict[int, float]:
    """CPU seconds of Postgres' processes by pid (a backend that exits in between is not counted;
    the service's pooled connections live through the drain)."""
    found = {postmaster.pid: _cpu(postmaster)}
    for child in postmaster.children():
        try:
            found[child.pid] = _cpu(child)
        except psutil.NoSuchProcess:
            continue
    return found
