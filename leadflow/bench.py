"""`make bench`: leadflow's throughput and latency, each beside a ceiling measured in the same run.

Everything runs on this machine: the embedded broker and Postgres, the services
as separate processes (`leadflow serve`), and the load generator here. Figures
are only comparable within one run, hence the ratios.
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from leadflow import operations
from leadflow.bench_feedback import HANDOFFS as FEEDBACK_HANDOFFS
from leadflow.bench_feedback import FeedbackTiming, feedback_report, feedback_timing
from leadflow.embedded import (
    Broker,
    Postgres,
    create_database,
    die_with_parent,
    free_port,
    start_broker,
    start_postgres,
    stop_process,
)
from leadflow.history import seed_history
from leadflow.operations import migrate_all
from services.intake.domain import IntakeEvent
from services.intake.handlers import to_envelope
from services.scoring import store as scoring_store
from services.scoring.config_files import load_model
from shared.db import make_engine
from shared.envelope import Envelope, utcnow
from shared.kafka import ensure_topics
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
HTTP_REQUESTS = 3000
HTTP_CONCURRENCY = 32
BATCH_SIZE = 100
BATCHES = 60
RAW_MESSAGES = 20_000
SCORING_LEADS = 500
EVENTS_PER_LEAD = 10
LATENCY_LEADS = 100
LATENCY_RATE = 10.0  # journeys per second
BACKTEST_EVENTS = 1_000_000
HANDOFF_RATE = 200.0  # requests per second
HANDOFF_REQUESTS = 2_000
FETCH_MAX_WAIT_MS = Settings().consumer_fetch_max_wait_ms  # the services' own setting, for a fair ceiling


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    ceiling_name: str
    ceiling: float

    @property
    def ratio(self) -> float:
        return self.value / self.ceiling if self.ceiling else 0.0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# --- ceilings --------------------------------------------------------------------


async def raw_produce(bootstrap: str, topic: str, payload: bytes) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await producer.start()
    try:
        started = time.perf_counter()
        futures = [
            await producer.send(topic, payload, key=str(i % 500).encode()) for i in range(RAW_MESSAGES)
        ]
        await asyncio.gather(*futures)
        return RAW_MESSAGES / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def raw_consume(bootstrap: str, topic: str) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        seen = 0
        started = None
        while seen < RAW_MESSAGES:
            batch = await consumer.getmany(timeout_ms=500, max_records=500)
            if batch and started is None:
                started = time.perf_counter()
            seen += sum(len(records) for records in batch.values())
        assert started is not None
        return RAW_MESSAGES / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def raw_round_trip(bootstrap: str, topic: str) -> list[float]:
    """Latency of one message through the broker (produce → a consumer sees it), at the latency rate."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="latest", fetch_max_wait_ms=FETCH_MAX_WAIT_MS
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await consumer.start()
    await producer.start()
    try:
        await consumer.getmany(timeout_ms=1000)
        latencies = []
        for _ in range(LATENCY_LEADS):
            sent = time.perf_counter()
            await producer.send_and_wait(topic, b"ping")
            while not await consumer.getmany(timeout_ms=1000):
                pass
            latencies.append((time.perf_counter() - sent) * 1000)
            await asyncio.sleep(1 / LATENCY_RATE)
        return latencies
    finally:
        await producer.stop()
        await consumer.stop()


async def post_raw(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: bytes
) -> tuple[int, bytes]:
    """One HTTP/1.1 POST on a kept-alive connection; (status, body)."""
    writer.write(head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    header = await reader.readuntil(b"\r\n\r\n")
    status = int(header[9:12])
    length = 0
    for line in header.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return status, await reader.readexactly(length)


async def hammer(url: str, bodies: Callable[[int], bytes], requests: int, headers: dict[str, str]) -> float:
    """Requests per second over HTTP_CONCURRENCY kept-alive connections.

    A minimal HTTP/1.1 client on asyncio streams: a general-purpose client such
    as httpx costs more CPU per request than the servers measured here, and on
    two cores it would become the ceiling instead of the server.
    """
    parsed = httpx.URL(url)
    head = (
        f"POST {parsed.raw_path.decode()} HTTP/1.1\r\nHost: {parsed.host}\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    ).encode()
    counter = iter(range(requests))

    async def worker(warm_up: int) -> None:
        reader, writer = await asyncio.open_connection(parsed.host, parsed.port)
        try:
            for _ in range(warm_up):
                await post_raw(reader, writer, head, bodies(0))
            await ready.wait()
            for i in counter:
                status, body = await post_raw(reader, writer, head, bodies(i))
                if status >= 300:
                    raise RuntimeError(f"{url}: {status} {body[:200]!r}")
        finally:
            writer.close()

    ready = asyncio.Event()
    workers = [asyncio.create_task(worker(warm_up=1)) for _ in range(HTTP_CONCURRENCY)]
    await asyncio.sleep(1.0)  # connections open and warmed up
    started = time.perf_counter()
    ready.set()
    await asyncio.gather(*workers)
    return requests / (time.perf_counter() - started)


EMPTY_APP = """
from fastapi import FastAPI, Request
app = FastAPI()
@app.post("/empty", status_code=202)
async def empty(request: Request) -> dict:
    await request.body()
    return {"accepted": 1}
@app.get("/empty")
async def empty_get() -> dict:
    return {"items": []}
"""


async def fixed_rate(
    url: str,
    requests: list[tuple[str, str, bytes]],
    *,
    rate: float,
    headers: dict[str, str],
    connections: int = 16,
) -> list[float]:
    """Latencies (ms) of (method, path, body) requests sent open-loop at `rate` a second.

    Open loop: each request is due at its own time whether or not earlier ones
    have answered, so a slow server shows up as latency rather than as a lower rate.
    """
    parsed = httpx.URL(url)
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection(parsed.host, parsed.port))
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    latencies: list[float] = []

    async def one(due: float, method: str, path: str, body: bytes) -> None:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        reader, writer = await pool.get()
        try:
            head = f"{method} {path} HTTP/1.1\r\nHost: {parsed.host}\r\n{extra}".encode()
            status, answer = await post_raw(reader, writer, head, body)
            if status >= 300:
                raise RuntimeError(f"{method} {path}: {status} {answer[:200]!r}")
            latencies.append((time.perf_counter() - due) * 1000)
        finally:
            pool.put_nowait((reader, writer))

    start = time.perf_counter() + 0.2
    await asyncio.gather(*(one(start + i / rate, *r) for i, r in enumerate(requests)))
    while not pool.empty():
        pool.get_nowait()[1].close()
    return latencies


async def seed_handoffs(db_dsn: str, count: int) -> list[str]:
    """Handoffs waiting for a decision, as the queue of a busy team would hold.

    Each with its two pending SLA timers (an accept cancels them), and the tables analyzed,
    as autovacuum would have done while such a queue built up.
    """
    ids = [str(uuid.uuid4()) for _ in range(count)]
    due = utcnow() + timedelta(hours=4)
    lead = orjson.dumps({"email": "ada@northwind.example", "traits": {"title": "VP of Marketing"}}).decode()
    explanation = orjson.dumps(
        [
            {
                "rule": "engagement.demo_request",
                "kind": "engagement",
                "points": 30.0,
                "detail": "1 × demo_request",
            }
        ]
    ).decode()
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.copy_records_to_table(
            "handoffs",
            schema_name="handoff",
            records=[
                (
                    h,
                    f"lead-{h}",
                    1,
                    "mql",
                    "bench-rep",
                    "standard",
                    due + timedelta(seconds=i),
                    60,
                    "A",
                    explanation,
                    lead,
                )
                for i, h in enumerate(ids)
            ],
            columns=[
                "handoff_id",
                "lead_id",
                "cycle",
                "stage",
                "owner",
                "policy",
                "decide_by",
                "score",
                "grade",
                "explanation",
                "lead",
            ],
        )
        await conn.copy_records_to_table(
            "sla_timers",
            schema_name="handoff",
            records=[
                (h, kind, "mql", at, due + timedelta(seconds=i))
                for i, h in enumerate(ids)
                for kind, at in (
                    ("warning", due + timedelta(seconds=i) - timedelta(hours=1)),
                    ("breach", due + timedelta(seconds=i)),
                )
            ],
            columns=["handoff_id", "kind", "stage", "due_at", "deadline"],
        )
        await conn.execute("ANALYZE handoff.handoffs, handoff.sla_timers")
    finally:
        await conn.close()
    return ids


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
                    metrics = (await client.get(f"{url}/metrics")).text
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


async def with_statement_stats(postgres: Postgres, data_dir: Path) -> Postgres:
    """Postgres restarted with pg_stat_statements loaded, so the bench can count statements."""
    conn = await asyncpg.connect(postgres.admin_uri)
    try:
        await conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
    finally:
        await conn.close()
    postgres.stop()
    return start_postgres(data_dir)


def histogram_quantiles(metrics: str, method: str, route: str) -> tuple[float, float] | None:
    """p50 and p99 (ms) of a route from `leadflow_http_request_seconds`, interpolated in its buckets."""
    buckets: list[tuple[float, float]] = []
    for family in text_string_to_metric_families(metrics):
        if family.name != "leadflow_http_request_seconds":
            continue
        for sample in family.samples:
            labels = sample.labels
            if sample.name.endswith("_bucket") and (labels["method"], labels["route"]) == (method, route):
                buckets.append((float(labels["le"]), sample.value))
    buckets.sort()
    if not buckets or not buckets[-1][1]:
        return None
    total = buckets[-1][1]

    def quantile(q: float) -> float:
        lower, below = 0.0, 0.0
        for bound, count in buckets:
            if count >= q * total:
                if bound == float("inf"):
                    return lower * 1000
                return 1000 * (lower + (bound - lower) * (q * total - below) / max(count - below, 1e-9))
            lower, below = bound, count
        return lower * 1000

    return quantile(0.5), quantile(0.99)


# --- leadflow ----------------------------------------------------------------------


def event(email: str, n: int, kind: str = "page_view") -> dict[str, Any]:
    props = {"url": f"https://leadflow.example/blog/{n}"} if kind == "page_view" else {"form_id": "demo"}
    return {
        "event_id": uuid.uuid4().hex,
        "type": kind,
        "occurred_at": (datetime.now(UTC) - timedelta(seconds=60 - n)).isoformat(),
        "email": email,
        "traits": {"title": "VP of Marketing", "company_size": 500, "industry": "Software", "country": "US"},
        "properties": props,
    }


def journey(email: str) -> list[dict[str, Any]]:
    return [
        {**event(email, 0), "properties": {"url": "https://leadflow.example/pricing"}},
        {**event(email, 1), "type": "content_download", "properties": {"content_id": "whitepaper"}},
        {**event(email, 2), "properties": {"url": "https://leadflow.example/pricing"}},
        event(email, 3, "demo_request"),
    ]


async def scoring_throughput(settings: Settings, db_dsn: str, env: dict[str, str]) -> float:
    """Events/s of one scoring process draining a backlog of lead events."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5)
    await producer.start()
    total = SCORING_LEADS * EVENTS_PER_LEAD
    try:
        futures = []
        for lead in range(SCORING_LEADS):
            email = f"bench{lead}.{uuid.uuid4().hex[:6]}@northwind.example"
            for n in range(EVENTS_PER_LEAD):
                envelope = to_envelope(
                    IntakeEvent.model_validate(event(email, n)), received_at=utcnow(), source="bench"
                )
                futures.append(
                    await producer.send(
                        settings.topic_prefix + "lead.events", envelope.to_bytes(), key=email.encode()
                    )
                )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return await drain_rate("scoring", env, db_dsn, total, "SELECT count(*) FROM scoring.lead_events")


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


async def end_to_end_latency(settings: Settings, intake_url: str, headers: dict[str, str]) -> list[float]:
    """ms from the POST of a journey's last event to `lead.mql_reached` seen on the bus."""
    consumer = AIOKafkaConsumer(
        settings.topic_prefix + "lead.lifecycle",
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="latest",
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )
    await consumer.start()
    await consumer.getmany(timeout_ms=1000)
    sent_at: dict[str, float] = {}
    latencies: list[float] = []

    async def watch() -> None:
        while len(latencies) < LATENCY_LEADS:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    envelope = Envelope.from_bytes(record.value)
                    if envelope.type == "lead.mql_reached" and envelope.trace_id in sent_at:
                        latencies.append((time.perf_counter() - sent_at.pop(envelope.trace_id)) * 1000)

    watcher = asyncio.create_task(watch())
    try:
        async with httpx.AsyncClient(timeout=30.0) as client:
            for i in range(LATENCY_LEADS):
                events = journey(f"latency{i}.{uuid.uuid4().hex[:6]}@northwind.example")
                await client.post(
                    f"{intake_url}/v1/events/batch", json={"events": events[:-1]}, headers=headers
                )
                trace_id = uuid.uuid4().hex
                sent_at[trace_id] = time.perf_counter()
                response = await client.post(
                    f"{intake_url}/v1/events", json=events[-1], headers={**headers, "X-Trace-Id": trace_id}
                )
                response.raise_for_status()
                await asyncio.sleep(1 / LATENCY_RATE)
        await asyncio.wait_for(watcher, timeout=60)
    finally:
        watcher.cancel()
        await consumer.stop()
    return latencies


def serve(service: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "leadflow", "serve", service],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )


async def wait_ready(url: str, path: str = "/readyz", within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    async with httpx.AsyncClient() as client:
        while True:
            try:
                if (await client.get(url + path)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} not ready")
            await asyncio.sleep(0.2)


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
    engine = make_engine(settings)
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
    report = await operations.backtest(settings, current=current, candidate=candidate, since=since)
    return BacktestTiming(leads=read, events=report.events, read_s=read_s, backtest_s=report.elapsed_s)


async def prepare(broker: Broker, postgres: Postgres) -> tuple[Settings, dict[str, str]]:
    """The bench database migrated, and the environment the services run with."""
    await create_database(postgres.admin_uri, "bench")
    settings = Settings(
        kafka_bootstrap=broker.bootstrap,
        database_url=postgres.database_url("bench"),
        topic_prefix="bench.",
        topic_partitions=12,
        admin_key="bench-admin-key-0123456789",
        config_dir=ROOT / "config",
    )
    await migrate_all(settings)
    env = {
        **os.environ,
        "LEADFLOW_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "LEADFLOW_DATABASE_URL": settings.database_url,
        "LEADFLOW_TOPIC_PREFIX": settings.topic_prefix,
        "LEADFLOW_ADMIN_KEY": settings.admin_key,
        "LEADFLOW_CONFIG_DIR": str(settings.config_dir),
        "LEADFLOW_LOG_LEVEL": "WARNING",
        "LEADFLOW_INTAKE_PORT": str(free_port()),
        "LEADFLOW_SCORING_PORT": str(free_port()),
        "LEADFLOW_HANDOFF_PORT": str(free_port()),
    }
    return settings, env


async def serve_empty_app(work: Path, port: int) -> subprocess.Popen[bytes]:
    """The ceiling of the HTTP figures: an empty FastAPI app on uvicorn's defaults."""
    (work / "empty_app.py").write_text(EMPTY_APP)
    process = subprocess.Popen(  # noqa: ASYNC220 - starts a server; nothing waits on it
        [sys.executable, "-m", "uvicorn", "empty_app:app", "--port", str(port), "--log-level", "warning"],
        cwd=work,
        preexec_fn=die_with_parent,
    )
    await wait_ready(f"http://127.0.0.1:{port}", "/docs")
    return process


async def run_handoff(work: Path) -> dict[str, HandoffPhase]:
    """`leadflow bench --only handoff`: the handoff API figures alone (about a minute)."""
    broker = start_broker(free_port())
    postgres = await with_statement_stats(start_postgres(work / "pg"), work / "pg")
    empty: subprocess.Popen[bytes] | None = None
    try:
        settings, env = await prepare(broker, postgres)
        headers = {"Authorization": f"Bearer {settings.admin_key}", "content-type": "application/json"}
        empty_port = free_port()
        empty = await serve_empty_app(work, empty_port)
        db_dsn = settings.database_url.replace("postgresql+asyncpg://", "postgresql://")
        print(f"handoff: queue listing and accept at {HANDOFF_RATE:.0f} requests/s …", flush=True)
        empty_at = (f"http://127.0.0.1:{empty_port}", empty.pid)
        return await handoff_latency(settings, env, db_dsn, empty_at, headers)
    finally:
        if empty is not None:
            stop_process(empty)
        broker.stop()
        postgres.stop()


async def run(
    work: Path,
) -> tuple[list[Figure], dict[str, list[float]], dict[str, HandoffPhase], FeedbackTiming, BacktestTiming]:
    broker = start_broker(free_port())
    postgres = await with_statement_stats(start_postgres(work / "pg"), work / "pg")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        settings, env = await prepare(broker, postgres)
        headers = {"Authorization": f"Bearer {settings.admin_key}", "content-type": "application/json"}
        payload = orjson.dumps(event("raw@northwind.example", 1)) * 2  # about an envelope's size
        await _ensure_raw_topic(settings)

        print("ceiling: raw aiokafka produce / consume …", flush=True)
        produce = await raw_produce(settings.kafka_bootstrap, "bench.raw", payload)
        consume = await raw_consume(settings.kafka_bootstrap, "bench.raw")

        print("ceiling: empty FastAPI endpoint …", flush=True)
        empty_port = free_port()
        empty_app = await serve_empty_app(work, empty_port)
        processes.append(empty_app)
        single_body = orjson.dumps(event("one@northwind.example", 1))
        empty = await hammer(
            f"http://127.0.0.1:{empty_port}/empty", lambda i: single_body, HTTP_REQUESTS, headers
        )

        print("intake: single and batch endpoints …", flush=True)
        # Its own topics, so the events it publishes are not a backlog for the scoring phases.
        intake_only = {
            **env,
            "LEADFLOW_TOPIC_PREFIX": "bench-intake.",
            "LEADFLOW_INTAKE_PORT": str(free_port()),
        }
        await ensure_topics(settings.model_copy(update={"topic_prefix": "bench-intake."}))
        throughput_intake = serve("intake", intake_only)
        processes.append(throughput_intake)
        intake_url = f"http://127.0.0.1:{intake_only['LEADFLOW_INTAKE_PORT']}"
        await wait_ready(intake_url)
        bodies = [orjson.dumps(event(f"single{i}@northwind.example", i % 50)) for i in range(HTTP_REQUESTS)]
        single = await hammer(f"{intake_url}/v1/events", lambda i: bodies[i], HTTP_REQUESTS, headers)
        batch_bodies = [
            orjson.dumps(
                {"events": [event(f"b{b}.{i}@northwind.example", i % 50) for i in range(BATCH_SIZE)]}
            )
            for b in range(BATCHES)
        ]
        batch_rps = await hammer(f"{intake_url}/v1/events/batch", lambda i: batch_bodies[i], BATCHES, headers)
        stop_process(throughput_intake)

        print(f"scoring: draining {SCORING_LEADS * EVENTS_PER_LEAD} events …", flush=True)
        db_dsn = settings.database_url.replace("postgresql+asyncpg://", "postgresql://")
        scoring_rate = await scoring_throughput(settings, db_dsn, env)

        print(f"end to end: {LATENCY_LEADS} journeys at {LATENCY_RATE:.0f}/s …", flush=True)
        intake_url = f"http://127.0.0.1:{env['LEADFLOW_INTAKE_PORT']}"
        pipeline = [serve("intake", env), serve("scoring", env)]
        processes += pipeline
        await wait_ready(intake_url)
        await wait_ready(f"http://127.0.0.1:{env['LEADFLOW_SCORING_PORT']}")
        latencies = await end_to_end_latency(settings, intake_url, headers)
        baseline = await raw_round_trip(settings.kafka_bootstrap, "bench.raw")
        for process in pipeline:  # idle from here on, but their loops would still take CPU
            stop_process(process)

        # Before the backtest: its million-row load leaves autovacuum running for minutes.
        print(f"handoff: queue listing and accept at {HANDOFF_RATE:.0f} requests/s …", flush=True)
        empty_at = (f"http://127.0.0.1:{empty_port}", empty_app.pid)
        handoff = await handoff_latency(settings, env, db_dsn, empty_at, headers)

        print(
            f"feedback: {FEEDBACK_HANDOFFS:,} handoffs' lifecycle events, rebuild, metrics API …", flush=True
        )
        feedback = await feedback_timing(settings, env)

        print(f"backtest: seeding {BACKTEST_EVENTS:,} events …", flush=True)
        backtest = await backtest_timing(settings, db_dsn)

        figures = [
            Figure("intake, single-event endpoint", single, "events/s", "empty FastAPI endpoint", empty),
            Figure(
                "intake, batch endpoint (100/batch)",
                batch_rps * BATCH_SIZE,
                "events/s",
                "raw aiokafka produce",
                produce,
            ),
            Figure("scoring, one process", scoring_rate, "events/s", "raw aiokafka consume", consume),
        ]
        return figures, {"leadflow": latencies, "broker": baseline}, handoff, feedback, backtest
    finally:
        for process in processes:
            stop_process(process)
        broker.stop()
        postgres.stop()


async def _ensure_raw_topic(settings: Settings) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic("bench.raw", 12, 1)])
    finally:
        await admin.close()


def report(
    figures: list[Figure],
    latencies: dict[str, list[float]],
    handoff: dict[str, HandoffPhase],
    feedback: FeedbackTiming,
    backtest: BacktestTiming,
) -> str:
    lf, broker = latencies["leadflow"], latencies["broker"]
    lines = [
        f"Run on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; command: `make bench`.",
        "",
        "| figure | leadflow | ceiling (same run) | ratio |",
        "| --- | ---: | --- | ---: |",
    ]
    for f in figures:
        lines.append(
            f"| {f.name} | {f.value:,.0f} {f.unit} | {f.ceiling_name}: {f.ceiling:,.0f}/s | {f.ratio:.2f} |"
        )
    lines += [
        "",
        f"| end-to-end latency, intake POST → `lead.mql_reached` ({len(lf)} leads at {LATENCY_RATE:.0f}/s) "
        "| p50 | p99 |",
        "| --- | ---: | ---: |",
        f"| leadflow (intake → Kafka → scoring → outbox → Kafka) | {statistics.median(lf):.1f} ms "
        f"| {percentile(lf, 99):.1f} ms |",
        f"| ceiling: one message through the broker, produce → consume | {statistics.median(broker):.1f} ms "
        f"| {percentile(broker, 99):.1f} ms |",
        "",
        handoff_report(handoff),
        "",
        feedback_report(feedback),
        "",
        "| backtest, current vs candidate model (`leadflow backtest --since 90d`) | seconds |",
        "| --- | ---: |",
        f"| leadflow: {backtest.events:,} events of {backtest.leads:,} leads, two models "
        f"| {backtest.backtest_s:.1f} s |",
        f"| ceiling: streaming the same history out of Postgres | {backtest.read_s:.1f} s |",
    ]
    return "\n".join(lines)


def handoff_report(phases: dict[str, HandoffPhase]) -> str:
    """The handoff latency table, and beside it where the time went in the same run."""
    named = (
        ("queue listing, `GET /v1/handoffs?status=mql&limit=50`", "queue"),
        ("accept, `POST /v1/handoffs/{id}/accept`", "accept"),
        ("ceiling: empty FastAPI endpoint", "empty"),
    )
    lines = [
        f"| handoff API at {HANDOFF_RATE:.0f} requests/s, open loop ({HANDOFF_REQUESTS:,} each) "
        "| p50 | p99 |",
        "| --- | ---: | ---: |",
    ]
    for name, key in named:
        values = phases[key].latencies
        lines.append(f"| {name} | {statistics.median(values):.1f} ms | {percentile(values, 99):.1f} ms |")

    def cells(value: Callable[[HandoffPhase], str]) -> str:
        return " | ".join(value(phases[key]) for _, key in named)

    def server(phase: HandoffPhase) -> str:
        return f"{phase.server_ms[0]:.1f} / {phase.server_ms[1]:.1f}" if phase.server_ms else "–"

    lines += [
        "",
        "| where the time goes (same run) | queue | accept | ceiling |",
        "| --- | ---: | ---: | ---: |",
        "| p50 / p99 in the service, ms (its `leadflow_http_request_seconds`, interpolated in buckets) "
        f"| {cells(server)} |",
        "| CPU of the serving process per request, ms (background loops included) "
        f"| {cells(lambda p: f'{p.cpu_ms:.2f}' if p.cpu_ms is not None else '–')} |",
        "| Postgres statements per request (BEGIN and COMMIT included, all the service ran) "
        f"| {cells(lambda p: f'{p.statements:.1f}' if p.statements is not None else '–')} |",
        f"| CPU of the load generator per request, ms | {cells(lambda p: f'{p.client_cpu_ms:.2f}')} |",
        f"| 1-minute load average as the phase started | {cells(lambda p: f'{p.load:.2f}')} |",
        "| machine CPU busy during the phase, all processes (100% = both cores) "
        f"| {cells(lambda p: f'{p.machine_busy:.0f}%')} |",
    ]
    return "\n".join(lines)


def statement_report(phases: dict[str, HandoffPhase]) -> str:
    """The costliest Postgres statements of each phase (calls and ms per request), for the console."""
    lines = []
    for name, phase in phases.items():
        for calls, ms, query in phase.top:
            lines.append(f"{name:7} {calls:5.2f} calls {ms:6.3f} ms  {query[:120]}")
    return "\n".join(lines)


def main(only: str | None = None) -> None:
    if only == "handoff":
        with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as tmp:
            handoff = asyncio.run(run_handoff(Path(tmp)))
        print(f"\n{statement_report(handoff)}\n\n{handoff_report(handoff)}\n")
        return
    with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as tmp:
        figures, latencies, handoff, feedback, backtest = asyncio.run(run(Path(tmp)))
    text = report(figures, latencies, handoff, feedback, backtest)
    print(f"\n{statement_report(handoff)}\n\n{text}\n")
    out = ROOT / "docs" / "benchmark-latest.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text + "\n")
    print(f"written to {out.relative_to(ROOT)}; copy notable runs into docs/benchmarks.md")
