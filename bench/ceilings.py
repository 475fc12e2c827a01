"""The ceilings: what the broker does for a bare aiokafka client, and what an empty FastAPI app
answers on uvicorn's defaults, measured in the same run as the figures they bound."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.end_to_end import FETCH_MAX_WAIT_MS, LATENCY_LEADS, LATENCY_RATE
from bench.stack import wait_ready
from leadflow.devstack.processes import die_with_parent
from shared.settings import Settings

RAW_MESSAGES = 20_000
RAW_TOPIC = "bench.raw"

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


async def ensure_raw_topic(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(RAW_TOPIC, 12, 1)])
    finally:
        await admin.close()


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
    """Messages/s of a bare consumer, from its first batch to the last of RAW_MESSAGES."""
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


async def raw_read(bootstrap: str, topic: str, total: int) -> float:
    """Messages/s of a bare consumer reading `total` messages of `topic`, timed from its start."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        seen, started = 0, time.perf_counter()
        while seen < total:
            batch = await consumer.getmany(timeout_ms=500, max_records=500)
            seen += sum(len(records) for records in batch.values())
        return total / (time.perf_counter() - started)
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
