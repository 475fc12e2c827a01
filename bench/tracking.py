"""The Tracking API: `/v1/batch` (Segment's shape, as the SDKs send it) beside intake's own
`/v1/events/batch`, the same events in batches of the same size, in one intake process, on
topics of their own. The ceiling is intake's own batch endpoint measured in the same run."""

from __future__ import annotations

import asyncio
import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from bench.http_load import hammer
from bench.lead_events import event
from bench.stack import serve, wait_ready
from leadflow.devstack.ports import free_port
from leadflow.devstack.processes import stop_process
from shared.kafka import ensure_topics
from shared.settings import Settings

BATCH_SIZE = 100
BATCHES = 100
ROUNDS = 3  # each endpoint three times, alternating: neither gets a warmer process or a quieter minute
PREFIX = "bench-tracking."


def segment_message(email: str, n: int) -> dict[str, Any]:
    """What analytics-python sends for `page(user_id=email, ...)`, the same event as `event()`."""
    at = datetime.now(UTC) - timedelta(seconds=60 - n)
    return {
        "type": "page",
        "messageId": uuid.uuid4().hex,
        "userId": email,
        "name": "Blog",
        "properties": {"url": f"https://leadflow.example/blog/{n}"},
        "context": {
            "library": {"name": "analytics-python", "version": "2.4.0"},
            "traits": {"title": "VP of Marketing", "employees": 500, "industry": "Software", "country": "US"},
        },
        "timestamp": at.isoformat(timespec="milliseconds"),
        "integrations": {},
    }


async def warmed(url: str, body: bytes, headers: dict[str, str]) -> None:
    """One batch through, retried while the new topics' partitions elect their leaders."""
    async with httpx.AsyncClient(timeout=10.0) as client:
        for _ in range(60):
            if (await client.post(url, content=body, headers=headers)).status_code < 300:
                return
            await asyncio.sleep(0.5)
    raise RuntimeError(f"{url} never accepted a batch")


async def tracking_throughput(settings: Settings, env: dict[str, str], admin_key: str) -> tuple[float, float]:
    """(events/s through /v1/events/batch, events/s through /v1/batch), best of ROUNDS each."""
    own = {
        **env,
        "LEADFLOW_TOPIC_PREFIX": PREFIX,
        "LEADFLOW_INTAKE_PORT": str(free_port()),
        # The same for both endpoints: a 2-core machine's first burst of 32 batches can take longer
        # than the default 1.5 s to be acknowledged, which would fail the run rather than slow it.
        "LEADFLOW_PRODUCE_TIMEOUT_S": "10",
    }
    await ensure_topics(settings.model_copy(update={"topic_prefix": PREFIX}))
    process = serve("intake", own)
    try:
        url = f"http://127.0.0.1:{own['LEADFLOW_INTAKE_PORT']}"
        await wait_ready(url)
        bearer = {"Authorization": f"Bearer {admin_key}", "content-type": "application/json"}
        basic = {
            "Authorization": "Basic " + base64.b64encode(f"{admin_key}:".encode()).decode(),
            "content-type": "application/json",
        }
        sent_at = datetime.now(UTC).isoformat()
        events = [
            orjson.dumps(
                {"events": [event(f"b{b}.{i}@northwind.example", i % 50) for i in range(BATCH_SIZE)]}
            )
            for b in range(BATCHES)
        ]
        messages = [
            orjson.dumps(
                {
                    "batch": [
                        segment_message(f"s{b}.{i}@northwind.example", i % 50) for i in range(BATCH_SIZE)
                    ],
                    "sentAt": sent_at,
                }
            )
            for b in range(BATCHES)
        ]
        await warmed(f"{url}/v1/events/batch", events[0], bearer)
        await warmed(f"{url}/v1/batch", messages[0], basic)
        own_rates, tracking_rates = [], []
        for _ in range(ROUNDS):
            own_rates.append(await hammer(f"{url}/v1/events/batch", lambda i: events[i], BATCHES, bearer))
            tracking_rates.append(await hammer(f"{url}/v1/batch", lambda i: messages[i], BATCHES, basic))
        return max(own_rates) * BATCH_SIZE, max(tracking_rates) * BATCH_SIZE
    finally:
        stop_process(process)
