"""The runs: the whole bench (every phase in order, on one broker and one Postgres), and a part
alone: handoff (`--only handoff`, about a minute), intake (`--only intake`, about 40 s) or the
Tracking API's (`--only tracking`)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Literal

import orjson

from bench.backlog import Drain
from bench.backtest import (
    BACKTEST_EVENTS,
    BacktestMemory,
    BacktestTiming,
    backtest_peak_rss,
    backtest_timing,
)
from bench.ceilings import (
    RAW_TOPIC,
    ensure_raw_topic,
    raw_consume,
    raw_produce,
    raw_round_trip,
    serve_empty_app,
)
from bench.end_to_end import LATENCY_LEADS, LATENCY_RATE, end_to_end_latency
from bench.feedback import HANDOFFS as FEEDBACK_HANDOFFS
from bench.feedback import FeedbackTiming, feedback_timing
from bench.handoff import HANDOFF_RATE, HandoffPhase, handoff_latency
from bench.http_load import hammer
from bench.intake import BATCH_SIZE, HTTP_REQUESTS, IntakeServed, Served, intake_throughput, served
from bench.lead_events import event
from bench.report import Figure
from bench.scoring import EVENTS_PER_LEAD, SCORING_LEADS, scoring_throughput
from bench.scoring_history import scoring_by_history
from bench.stack import libpq_dsn, prepare, serve, start_bench_broker, wait_ready, with_statement_stats
from bench.tracking import tracking_throughput
from leadflow.devstack.broker import BrokerKind
from leadflow.devstack.ports import free_port
from leadflow.devstack.postgres import start_postgres
from leadflow.devstack.processes import stop_process


async def run_handoff(work: Path, broker_kind: BrokerKind | Literal["auto"]) -> dict[str, HandoffPhase]:
    """`python -m bench --only handoff`: the handoff API figures alone (about a minute)."""
    broker = start_bench_broker(work, broker_kind)
    postgres = await with_statement_stats(start_postgres(work / "pg"), work / "pg")
    empty: subprocess.Popen[bytes] | None = None
    try:
        settings, env = await prepare(broker, postgres)
        headers = {"Authorization": f"Bearer {settings.admin_key}", "content-type": "application/json"}
        empty_port = free_port()
        empty = await serve_empty_app(work, empty_port)
        print(f"handoff: queue listing and accept at {HANDOFF_RATE:.0f} requests/s …", flush=True)
        empty_at = (f"http://127.0.0.1:{empty_port}", empty.pid)
        return await handoff_latency(settings, env, libpq_dsn(settings), empty_at, headers)
    finally:
        if empty is not None:
            stop_process(empty)
        broker.stop()
        postgres.stop()


async def run_intake(
    work: Path, broker_kind: BrokerKind | Literal["auto"]
) -> tuple[list[Figure], dict[str, Served], str]:
    """`python -m bench --only intake`: intake's two figures beside their ceilings, measured as in
    the whole bench (empty endpoint, then intake; raw produce, then the batch endpoint)."""
    broker = start_bench_broker(work, broker_kind)
    postgres = start_postgres(work / "pg")
    empty: subprocess.Popen[bytes] | None = None
    try:
        settings, env = await prepare(broker, postgres)
        headers = {"Authorization": f"Bearer {settings.admin_key}", "content-type": "application/json"}
        await ensure_raw_topic(settings)
        print("ceiling: raw aiokafka produce …", flush=True)
        produce = await raw_produce(
            settings.kafka_bootstrap, RAW_TOPIC, orjson.dumps(event("raw@northwind.example", 1)) * 2
        )
        print("ceiling: empty FastAPI endpoint …", flush=True)
        empty_port = free_port()
        empty = await serve_empty_app(work, empty_port)
        single_body = orjson.dumps(event("one@northwind.example", 1))
        empty_load = hammer(
            f"http://127.0.0.1:{empty_port}/empty", lambda i: single_body, HTTP_REQUESTS, headers
        )
        empty_served = await served(empty.pid, HTTP_REQUESTS, empty_load)
        stop_process(empty)
        empty = None
        print("intake: single and batch endpoints …", flush=True)
        intake = await intake_throughput(settings, env, headers)
        figures = intake_figures(intake, empty_served.rps, produce)
        return (
            figures,
            {
                "empty FastAPI endpoint": empty_served,
                "intake, single-event endpoint, new people": intake.new_people,
                "intake, single-event endpoint, returning people": intake.returning_people,
            },
            broker.description,
        )
    finally:
        if empty is not None:
            stop_process(empty)
        broker.stop()
        postgres.stop()


async def run_scoring_history(work: Path, broker_kind: BrokerKind | Literal["auto"]) -> dict[int, Drain]:
    """`python -m bench --only scoring_history`: scoring's rate by prior events per lead."""
    broker = start_bench_broker(work, broker_kind)
    postgres = start_postgres(work / "pg")
    try:
        settings, env = await prepare(broker, postgres)
        return await scoring_by_history(settings, libpq_dsn(settings), env)
    finally:
        broker.stop()
        postgres.stop()


async def run_backtest(
    work: Path, broker_kind: BrokerKind | Literal["auto"]
) -> tuple[BacktestTiming, BacktestMemory]:
    """`python -m bench --only backtest`: the backtest's time and peak RSS over the seeded history."""
    broker = start_bench_broker(work, broker_kind)  # unused by the backtest; the settings name one
    postgres = start_postgres(work / "pg")
    try:
        settings, env = await prepare(broker, postgres)
        print(f"backtest: seeding {BACKTEST_EVENTS:,} events …", flush=True)
        timing = await backtest_timing(settings, libpq_dsn(settings))
        return timing, backtest_peak_rss(env, work)
    finally:
        broker.stop()
        postgres.stop()


async def run_tracking(work: Path, broker_kind: BrokerKind | Literal["auto"]) -> tuple[Figure, str]:
    """`python -m bench --only tracking`: /v1/batch beside /v1/events/batch (under a minute)."""
    broker = start_bench_broker(work, broker_kind)
    postgres = start_postgres(work / "pg")
    try:
        settings, env = await prepare(broker, postgres)
        print("tracking: /v1/batch beside /v1/events/batch …", flush=True)
        return tracking_figure(
            *await tracking_throughput(settings, env, settings.admin_key)
        ), broker.description
    finally:
        broker.stop()
        postgres.stop()


def intake_figures(intake: IntakeServed, empty: float, produce: float) -> list[Figure]:
    return [
        Figure(
            "intake, single-event endpoint (new people)",
            intake.new_people.rps,
            "events/s",
            "empty FastAPI endpoint",
            empty,
        ),
        Figure(
            "intake, single-event endpoint (returning people)",
            intake.returning_people.rps,
            "events/s",
            "empty FastAPI endpoint",
            empty,
        ),
        Figure(
            "intake, batch endpoint (100/batch)",
            intake.batch_rps * BATCH_SIZE,
            "events/s",
            "raw aiokafka produce",
            produce,
        ),
    ]


def tracking_figure(own_batch: float, tracking_batch: float) -> Figure:
    return Figure(
        "intake, Tracking API /v1/batch (100/batch)",
        tracking_batch,
        "events/s",
        "intake /v1/events/batch, same process",
        own_batch,
    )


async def run(
    work: Path, broker_kind: BrokerKind | Literal["auto"]
) -> tuple[
    list[Figure],
    dict[str, list[float]],
    dict[str, HandoffPhase],
    FeedbackTiming,
    BacktestTiming,
    dict[int, Drain],
    BacktestMemory,
    str,
]:
    broker = start_bench_broker(work, broker_kind)
    postgres = await with_statement_stats(start_postgres(work / "pg"), work / "pg")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        settings, env = await prepare(broker, postgres)
        headers = {"Authorization": f"Bearer {settings.admin_key}", "content-type": "application/json"}
        payload = orjson.dumps(event("raw@northwind.example", 1)) * 2  # about an envelope's size
        await ensure_raw_topic(settings)

        print("ceiling: raw aiokafka produce / consume …", flush=True)
        produce = await raw_produce(settings.kafka_bootstrap, RAW_TOPIC, payload)
        consume = await raw_consume(settings.kafka_bootstrap, RAW_TOPIC)

        print("ceiling: empty FastAPI endpoint …", flush=True)
        empty_port = free_port()
        empty_app = await serve_empty_app(work, empty_port)
        processes.append(empty_app)
        single_body = orjson.dumps(event("one@northwind.example", 1))
        empty = await hammer(
            f"http://127.0.0.1:{empty_port}/empty", lambda i: single_body, HTTP_REQUESTS, headers
        )

        print("intake: single and batch endpoints …", flush=True)
        intake = await intake_throughput(settings, env, headers)

        print("tracking: /v1/batch beside /v1/events/batch …", flush=True)
        tracking = tracking_figure(*await tracking_throughput(settings, env, settings.admin_key))

        print(f"scoring: draining {SCORING_LEADS * EVENTS_PER_LEAD} events …", flush=True)
        db_dsn = libpq_dsn(settings)
        scoring_rate = await scoring_throughput(settings, db_dsn, env)
        history = await scoring_by_history(settings, db_dsn, env)

        print(f"end to end: {LATENCY_LEADS} journeys at {LATENCY_RATE:.0f}/s …", flush=True)
        intake_url = f"http://127.0.0.1:{env['LEADFLOW_INTAKE_PORT']}"
        pipeline = [serve("intake", env), serve("scoring", env)]
        processes += pipeline
        await wait_ready(intake_url)
        await wait_ready(f"http://127.0.0.1:{env['LEADFLOW_SCORING_PORT']}")
        latencies = await end_to_end_latency(settings, intake_url, headers)
        baseline = await raw_round_trip(settings.kafka_bootstrap, RAW_TOPIC)
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
        memory = backtest_peak_rss(env, work)

        figures = [
            *intake_figures(intake, empty, produce),
            tracking,
            Figure("scoring, one process", scoring_rate, "events/s", "raw aiokafka consume", consume),
        ]
        latency = {"leadflow": latencies, "broker": baseline}
        return figures, latency, handoff, feedback, backtest, history, memory, broker.description
    finally:
        for process in processes:
            stop_process(process)
        broker.stop()
        postgres.stop()
