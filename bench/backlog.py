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
