"""End-to-end latency: intake POST of a journey's last event → `lead.mql_reached` on the bus."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
from aiokafka import AIOKafkaConsumer

from bench.lead_events import journey
from shared.envelope import Envelope
from shared.events import MqlReached
from shared.settings import Settings

LATENCY_LEADS = 100
LATENCY_RATE = 10.0  # journeys per second
FETCH_MAX_WAIT_MS = Settings().consumer_fetch_max_wait_ms  # the services' own setting, for a fair ceiling


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
                    if envelope.type == MqlReached.event_type and envelope.trace_id in sent_at:
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
