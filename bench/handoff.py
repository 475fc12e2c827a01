"""handoff: the queue listing and accepts on a seeded queue, open loop at HANDOFF_RATE, beside the
empty FastAPI endpoint, and where each request's time went (service histogram, CPU, statements)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import asyncpg
import httpx
import psutil

from bench.http_load import fixed_rate
from bench.quantiles import histogram_quantiles
from bench.seeding import seed_handoffs
from bench.stack import serve, wait_ready
from leadflow.devstack.processes import stop_process
from shared.kafka import ensure_topics
from shared.settings import Settings

HANDOFF_RATE = 200.0  # requests per second
HANDOFF_REQUESTS = 2_000


@dataclass
class HandoffPhase:
    """One open-loop phase of the handoff bench, and where its time went."""

    latencies: list[float]  # ms, as the client saw them (queueing before the service included)
    load: float  # the machine's 1-minute load average as the phase started
    machine_busy: float  # % of all cores busy during the phase, whoever used them (100 = every core)
    server_ms: tuple[float, float] | None  # p50, p99 inside the service (its request histogram)
    cpu_ms: float | None  # the serving process's CPU per request (its background loops included)
    client_cpu_ms: float  # the load generator's CPU per request
    statements: float | None  # Postgres statements per request (all the service ran, BEGIN/COMMIT too)
    top: list[tuple[float, float, str]]  # (calls, ms) per request and the statement, the costliest first


async def handoff_latency(
    settings: Settings, env: dict[str, str], db_dsn: str, empty: tuple[str, int], headers: dict[str, str]
) -> dict[str, HandoffPhase]:
    """The queue listing, then accepts, then the empty endpoint (url, pid), each at HANDOFF_RATE.

    The service gets topics of its own, as intake does: on the shared ones it would first
    consume the earlier phases' events (`lead.lifecycle` from the start) while being measured.
    """
    prefix = "bench-handoff."
    await ensure_topics(settings.model_copy(update={"topic_prefix": prefix}))
    env = {**env, "LEADFLOW_TOPIC_PREFIX": prefix}
    ids = await seed_handoffs(db_dsn, HANDOFF_REQUESTS)
    url = f"http://127.0.0.1:{env['LEADFLOW_HANDOFF_PORT']}"
    process = serve("handoff", env)
    stats = await asyncpg.connect(db_dsn)
    try:
        await wait_ready(url)
        if not await _statement_stats_on(stats):
            stats = None
        get = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        # post_raw writes Content-Length itself: a second one is a request httptools refuses (400).
        phases = {
            "queue": (url, [("GET", "/v1/handoffs?status=mql&limit=50", b"")] * HANDOFF_REQUESTS, get),
            "accept": (url, [("POST", f"/v1/handoffs/{h}/accept", b"{}") for h in ids], headers),
            "empty": (empty[0], [("GET", "/empty", b"")] * HANDOFF_REQUESTS, {}),
        }
        routes = {"queue": ("GET", "/v1/handoffs"), "accept": ("POST", "/v1/handoffs/{handoff_id}/accept")}
        results = {}
        for name, (base, requests, phase_headers) in phases.items():
            own = name in routes
            results[name] = await _measured_phase(
                base,
                requests,
                phase_headers,
                pid=process.pid if own else empty[1],
                stats=stats if own else None,
            )
            if own:
                async with httpx.AsyncClient() as client:
                    metrics = (await client.get(f"{url}/metrics", headers=get)).text
                results[name].server_ms = histogram_quantiles(metrics, *routes[name])
        return results
    finally:
        if stats is not None:
            await stats.close()
        stop_process(process)


async def _measured_phase(
    url: str,
    requests: list[tuple[str, str, bytes]],
    headers: dict[str, str],
    *,
    pid: int,
    stats: asyncpg.Connection | None,
) -> HandoffPhase:
    server = psutil.Process(pid)
    if stats is not None:
        await stats.execute("SELECT pg_stat_statements_reset()")
    load = os.getloadavg()[0]
    psutil.cpu_percent()  # starts the machine-wide count
    cpu, client_cpu = sum(server.cpu_times()[:2]), time.process_time()
    latencies = await fixed_rate(url, requests, rate=HANDOFF_RATE, headers=headers)
    cpu, client_cpu = sum(server.cpu_times()[:2]) - cpu, time.process_time() - client_cpu
    machine_busy = psutil.cpu_percent()
    n = len(requests)
    statements, top = None, []
    if stats is not None:
        rows = await stats.fetch(
            "SELECT calls, total_exec_time, query FROM pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND query NOT LIKE '%pg_stat_statements%' ORDER BY total_exec_time DESC"
        )
        statements = sum(r["calls"] for r in rows) / n
        top = [(r["calls"] / n, r["total_exec_time"] / n, " ".join(r["query"].split())) for r in rows[:8]]
    return HandoffPhase(
        latencies=latencies,
        load=load,
        machine_busy=machine_busy,
        server_ms=None,
        cpu_ms=1000 * cpu / n,
        client_cpu_ms=1000 * client_cpu / n,
        statements=statements,
        top=top,
    )


async def _statement_stats_on(conn: asyncpg.Connection) -> bool:
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.execute("SELECT pg_stat_statements_reset()")
    except asyncpg.PostgresError:
        return False  # not preloaded (an external Postgres): the figures go without statement counts
    return True
