"""A service that cannot reach Kafka or Postgres says so (503, not-ready) instead of failing."""

from __future__ import annotations

import httpx

from leadflow.devstack.ports import free_port
from services.intake.app import create as create_intake
from services.scoring.app import create as create_scoring
from shared.settings import Settings
from tests.support import ADMIN, good_fit_journey, unique_email


async def test_intake_without_kafka_is_not_ready_and_answers_503(settings: Settings) -> None:
    app = create_intake(settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}"}))
    runtime = app.state.runtime
    await runtime.start()
    try:
        async with httpx.AsyncClient(
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
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://scoring"
        ) as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["postgres"].startswith("unavailable")
            leads = await client.get("/v1/leads", headers={"X-API-Key": "lf_some_key"})
            assert leads.status_code == 503
            assert leads.json()["title"] == "Temporarily unavailable"
    finally:
        await runtime.stop()
