"""The broker unreachable, stopped or frozen mid-run: intake answers 503 with Retry-After within
2 s instead of holding the request, never 500, and accepts again once the broker is back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil

from leadflow.devstack.broker import Broker, start_broker
from leadflow.devstack.ports import free_port
from shared.kafka import ensure_topics
from shared.settings import Settings
from tests.outage_drills import burst, summary
from tests.support import ADMIN, eventually, good_fit_journey, loopback_client, running, unique_email

CALLS, CONCURRENCY = 30, 6


@contextmanager
def own_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker only this test uses (the embedded one, whatever the suite runs on), to stop or freeze."""
    with (tmp_path / "broker.log").open("ab") as log:
        broker = start_broker(free_port(), log=log)
        try:
            yield broker
        finally:
            broker.stop()


def on_own_broker(broker: Broker) -> dict[str, object]:
    """Settings that point at the test's own broker (Tansu lacks the idempotent producer)."""
    return {"kafka_bootstrap": broker.bootstrap, "kafka_idempotent_producer": False}


async def post_event(client: httpx.AsyncClient) -> httpx.Response:
    return await client.post("/v1/events", json=good_fit_journey(unique_email())[0], headers=ADMIN)


async def accepts(client: httpx.AsyncClient) -> bool:
    return (await post_event(client)).status_code == 202


async def test_intake_answers_503_at_once_when_the_broker_was_never_reachable(settings: Settings) -> None:
    nowhere = settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}"})
    from services.intake.app import create

    app = create(nowhere)
    await app.state.runtime.start()
    try:
        async with loopback_client(
            transport=httpx.ASGITransport(app=app), base_url="http://intake"
        ) as client:
            answers = await burst(lambda: post_event(client), calls=CALLS, concurrency=CONCURRENCY)
        print("broker never reachable:", summary(answers))
        assert all(a.status == 503 and a.retry_after and a.seconds < 2.0 for a in answers), summary(answers)
    finally:
        await app.state.runtime.stop()


async def test_intake_answers_503_within_2_s_when_the_broker_stops(
    settings: Settings, tmp_path: Path
) -> None:
    with own_broker(tmp_path) as broker:
        own = settings.model_copy(
            update={"kafka_bootstrap": broker.bootstrap, "kafka_idempotent_producer": False}
        )
        await ensure_topics(own)
        async with running("intake", own) as intake:
            assert await accepts(intake.client)
            broker.stop()
            answers = await burst(lambda: post_event(intake.client), calls=CALLS, concurrency=CONCURRENCY)
            print("broker stopped:", summary(answers))
            assert all(a.status == 503 and a.retry_after and a.seconds < 2.0 for a in answers), summary(
                answers
            )
            ready = await intake.client.get("/readyz")
            assert ready.status_code == 503


async def test_intake_answers_503_within_2_s_while_the_broker_is_frozen_and_accepts_after(
    settings: Settings, tmp_path: Path
) -> None:
    with own_broker(tmp_path) as broker:
        own = settings.model_copy(
            update={"kafka_bootstrap": broker.bootstrap, "kafka_idempotent_producer": False}
        )
        await ensure_topics(own)
        async with running("intake", own) as intake:
            assert await accepts(intake.client)
            process = psutil.Process(broker.process.pid)
            process.suspend()
            try:
                answers = await burst(lambda: post_event(intake.client), calls=CALLS, concurrency=CONCURRENCY)
            finally:
                process.resume()
            print("broker frozen:", summary(answers))
            assert all(a.status == 503 and a.retry_after and a.seconds < 2.0 for a in answers), summary(
                answers
            )
            started = time.monotonic()
            await eventually(lambda: accepts(intake.client), timeout=30)
            print(f"accepting again {time.monotonic() - started:.1f} s after the broker resumed")
