"""How fast one service process works off a backlog (scoring's lead events, feedback's lifecycle)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from bench.stack import serve
from leadflow.devstack.processes import stop_process


async def drain_rate(
    service: str, env: dict[str, str], db_dsn: str, total: int, done: str, *args: Any
) -> float:
    """Items/s of one `service` process working off a backlog, from its first item to `total`, as
    counted by the query `done`."""
    conn = await asyncpg.connect(db_dsn)
    process = serve(service, env)
    try:
        started = None
        while True:
            count = await conn.fetchval(done, *args)
            if count and started is None:
                started = time.perf_counter()
            if count >= total:
                assert started is not None
                return total / (time.perf_counter() - started)
            if process.poll() is not None:
                raise RuntimeError(f"{service} exited during the benchmark")
            await asyncio.sleep(0.05)
    finally:
        stop_process(process)
        await conn.close()
