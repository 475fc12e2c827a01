"""feedback: lifecycle events turned into facts, a rebuild from the topic, and the metrics API,
each beside a ceiling measured in the same run.

- consumer: one `leadflow serve feedback` draining a backlog of handoff lifecycle events;
  ceiling: a bare aiokafka consumer reading the same topic.
- rebuild: `leadflow feedback rebuild` of the same topic; same ceiling.
- metrics API: the grouped return rate and the funnel over those handoffs, one request at a
  time; ceiling: the same process's `/healthz`.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from bench.backlog import drain_rate
from bench.ceilings import raw_read
from bench.quantiles import percentile
from bench.stack import libpq_dsn, serve, wait_ready
from leadflow.admin.feedback_rebuild import rebuild_feedback
from leadflow.devstack.ports import free_port
from leadflow.devstack.processes import stop_process
from services.feedback import store as feedback_store
from shared.envelope import Envelope, utcnow
from shared.events import (
    HandoffCreated,
    LeadRejected,
    SalAccepted,
    ScoreContribution,
    SqlQualified,
    envelope_for,
)
from shared.kafka import ensure_topics
from shared.settings import Settings

HANDOFFS = 5_000
API_REQUESTS = 300
SOURCES = ("webinar", "referral", "paid_search", "organic", "event")
PREFIX = "bench-feedback."


@dataclass(frozen=True)
class FeedbackTiming:
    events: int
    consumer_rate: float  # events/s
    rebuild_rate: float  # events/s
    raw_rate: float  # events/s, the ceiling of both
    groups_ms: tuple[float, float]  # p50, p99
    funnel_ms: tuple[float, float]
    healthz_ms: tuple[float, float]


def lifecycle(n: int) -> list[Envelope]:
    """A handoff's events: created, then accepted (and for some qualified) or rejected."""
    at = utcnow() - timedelta(days=n % 60, minutes=n % 1440)
    lead_id = f"lead-{n}"
    created = HandoffCreated(
        handoff_id=f"h{n}",
        cycle=1,
        owner=f"rep-{n % 12}",
        team=("emea", "amer", "apac")[n % 3],
        policy="hot" if n % 4 == 0 else "standard",
        decide_by=at + timedelta(hours=2),
        channel=("organic", "paid", "referral")[n % 3],
        campaign=f"campaign-{n % 20}",
        source=SOURCES[n % len(SOURCES)],
        score=40 + n % 80,
        grade="ABCD"[n % 4],
        mql_at=at,
        explanation=[
            ScoreContribution(rule="fit.title", kind="fit", points=20, detail="title"),
            ScoreContribution(rule=f"engagement.rule_{n % 7}", kind="engagement", points=30, detail="x"),
        ],
    )
    common: dict[str, Any] = dict(
        handoff_id=f"h{n}", cycle=1, actor="rep", owner=created.owner, policy=created.policy
    )
    events = [envelope_for(created, source="bench", lead_id=lead_id, occurred_at=at)]
    decided_at = at + timedelta(minutes=30)
    if n % 9 == 0:
        rejected = LeadRejected(
            **common, from_stage="mql", to_stage="returned", in_time=True, reason="not_ready"
        )
        events.append(envelope_for(rejected, source="bench", lead_id=lead_id, occurred_at=decided_at))
    else:
        accepted = SalAccepted(**common, from_stage="mql", to_stage="sal", in_time=n % 5 != 0)
        events.append(envelope_for(accepted, source="bench", lead_id=lead_id, occurred_at=decided_at))
        if n % 3 == 0:
            qualified = SqlQualified(**common, from_stage="sal", to_stage="sql", in_time=True)
            events.append(
                envelope_for(
                    qualified, source="bench", lead_id=lead_id, occurred_at=decided_at + timedelta(days=2)
                )
            )
    return events


async def publish(bootstrap: str, topic: str) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, envelope.to_bytes(), key=(envelope.lead_id or "").encode())
            for n in range(HANDOFFS)
            for envelope in lifecycle(n)
        ]
        await asyncio.gather(*futures)
        return len(futures)
    finally:
        await producer.stop()


async def drain(db_dsn: str, env: dict[str, str], topic: str, total: int) -> float:
    """Events/s of one feedback process applying the backlog (its inbox counts what it handled)."""
    done = f"SELECT count(*) FROM {feedback_store.inbox.fullname} WHERE topic = $1"
    return await drain_rate("feedback", env, db_dsn, total, done, topic)


async def sequential_latency(
    client: httpx.AsyncClient, path: str, headers: dict[str, str]
) -> tuple[float, float]:
    timings = []
    for _ in range(API_REQUESTS):
        started = time.perf_counter()
        response = await client.get(path, headers=headers)
        timings.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return statistics.median(timings), percentile(timings, 99)


async def feedback_timing(settings: Settings, env: dict[str, str]) -> FeedbackTiming:
    own = settings.model_copy(update={"topic_prefix": PREFIX})
    await ensure_topics(own)
    topic = PREFIX + "lead.lifecycle"
    total = await publish(settings.kafka_bootstrap, topic)
    raw = await raw_read(settings.kafka_bootstrap, topic, total)
    port = free_port()
    feedback_env = {**env, "LEADFLOW_TOPIC_PREFIX": PREFIX, "LEADFLOW_FEEDBACK_PORT": str(port)}
    db_dsn = libpq_dsn(settings)
    consumer_rate = await drain(db_dsn, feedback_env, topic, total)

    rebuilt = await rebuild_feedback(own)
    rebuild_rate = rebuilt.applied / rebuilt.seconds

    feedback = serve("feedback", feedback_env)
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_ready(url)
        headers = {"Authorization": f"Bearer {settings.admin_key}"}
        async with httpx.AsyncClient(base_url=url, timeout=10.0) as client:
            groups = await sequential_latency(
                client, "/v1/metrics/return-rate/groups?by=source&window=90d", headers
            )
            funnel = await sequential_latency(client, "/v1/metrics/funnel?cohort=week&cohorts=12", headers)
            healthz = await sequential_latency(client, "/healthz", {})
    finally:
        stop_process(feedback)
    return FeedbackTiming(total, consumer_rate, rebuild_rate, raw, groups, funnel, healthz)
