"""A service that cannot reach Kafka or Postgres, or whose consumer is stuck, says so (503,
not-ready) instead of failing or looking healthy."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import httpx

from leadflow.devstack.ports import free_port
from services.intake.app import create as create_intake
from services.intake.domain import IntakeEvent
from services.intake.handlers import to_envelope
from services.scoring.app import create as create_scoring
from shared.api_keys import generate_key
from shared.envelope import utcnow
from shared.settings import Settings
from shared.topics import Topics
from tests.support import (
    ADMIN,
    eventually,
    good_fit_journey,
    loopback_client,
    producer,
    running,
    unique_email,
)


async def test_intake_without_kafka_is_not_ready_and_answers_503(settings: Settings) -> None:
    app = create_intake(settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}"}))
    runtime = app.state.runtime
    await runtime.start()
    try:
        async with loopback_client(
            transport=httpx.ASGITransport(app=app), base_url="http://intake"
        ) as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["kafka"].startswith("unavailable")
            posted = await client.post("/v1/events", json=good_fit_journey(unique_email())[0], headers=ADMIN)
            assert posted.status_code == 503
            assert posted.headers["content-type"] == "application/problem+json"
            assert posted.headers["retry-after"] == "1"
    finally:
        await runtime.stop()


async def test_scoring_without_postgres_answers_503(settings: Settings) -> None:
    unreachable = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nowhere"
    app = create_scoring(settings.model_copy(update={"database_url": unreachable}))
    runtime = app.state.runtime
    await runtime.start()
    try:
        async with loopback_client(
            transport=httpx.ASGITransport(app=app), base_url="http://scoring"
        ) as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["postgres"].startswith("unavailable")
            # A key shaped like one, so only Postgres could tell whether it exists.
            leads = await client.get("/v1/leads", headers={"X-API-Key": generate_key()[0]})
            assert leads.status_code == 503
            assert leads.json()["title"] == "Temporarily unavailable"
    finally:
        await runtime.stop()


async def test_a_consumer_that_makes_no_progress_while_lag_exists_is_not_ready(settings: Settings) -> None:
    async with running("scoring", settings.model_copy(update={"consumer_stall_s": 1.0})) as scoring:
        blocker = await asyncpg.connect(
            settings.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        )
        try:
            locked = blocker.transaction()
            await locked.start()
            await blocker.execute(
                "LOCK TABLE scoring.inbox IN ACCESS EXCLUSIVE MODE"
            )  # every batch now times out
            posted = await intake_event(settings)
            stalled = await eventually(lambda: not_ready(scoring.client), timeout=20)
            # The lag is at least the event just sent (the broker may count a marker offset too).
            assert re.fullmatch(
                r"stalled: lag [1-9]\d*, no progress for \d+ s", stalled["checks"]["consumer"]
            )
            assert stalled["checks"]["postgres"] == "ok"
            await locked.rollback()
        finally:
            await blocker.close()
        await eventually(lambda: ready(scoring.client), timeout=20)
        assert posted


async def intake_event(settings: Settings) -> str:
    event = IntakeEvent.model_validate(good_fit_journey(unique_email())[0])
    envelope = to_envelope(event, received_at=utcnow(), source="test")
    async with producer(settings) as p:
        await p.send_and_wait(Topics(settings.topic_prefix).events, value=envelope.to_bytes(), key=b"k")
    return envelope.id


async def not_ready(client: httpx.AsyncClient) -> dict[str, Any] | None:
    answer = await client.get("/readyz")
    return answer.json() if answer.status_code == 503 else None  # type: ignore[no-any-return]


async def ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200
