"""Postgres frozen or stopped: every API call is answered within 2 s, 503 with Retry-After and
never 500, and the service serves again once Postgres is back. intake keeps taking events of
the people whose data keys it holds (a person it has not seen is a 503: never an event in clear)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from leadflow.admin.migrations import migrate_all
from leadflow.devstack.ports import free_port
from shared.api_keys import generate_key
from shared.auth import Scope
from shared.settings import Settings
from tests.outage_drills import Answer, OwnPostgres, burst, summary
from tests.support import ADMIN, eventually, good_fit_journey, running, unique_email

NEVER_SEEN = {"X-API-Key": generate_key()[0]}  # shaped like a key, so only Postgres could tell

CALLS, CONCURRENCY = 30, 6


def assert_answered_as_an_outage(answers: list[Answer]) -> None:
    figures = summary(answers)
    assert all(a.status == 503 for a in answers), figures
    assert all(a.seconds < 2.0 and a.retry_after for a in answers), figures


async def own_postgres(settings: Settings, tmp_path: Path) -> tuple[OwnPostgres, Settings]:
    postgres = await OwnPostgres.start(tmp_path, "leadflow")
    return postgres, settings.model_copy(update={"database_url": postgres.server.database_url("leadflow")})


async def serves(client: httpx.AsyncClient) -> bool:
    return (await client.get("/v1/leads", headers=ADMIN)).status_code == 200


async def test_frozen_postgres_is_a_503_within_2_s_and_the_service_recovers(
    settings: Settings, tmp_path: Path
) -> None:
    postgres, own = await own_postgres(settings, tmp_path)
    try:
        async with running("scoring", own) as scoring:
            assert await serves(scoring.client)
            postgres.freeze()
            try:
                answers = await burst(
                    lambda: scoring.client.get("/v1/leads", headers=ADMIN),
                    calls=CALLS,
                    concurrency=CONCURRENCY,
                )
                ready = await scoring.client.get("/readyz")
            finally:
                postgres.thaw()
            print("frozen postgres:", summary(answers))
            assert_answered_as_an_outage(answers)
            assert ready.status_code == 503
            assert ready.json()["checks"]["postgres"].startswith("unavailable")
            await eventually(lambda: serves(scoring.client), timeout=10)
    finally:
        postgres.close()


async def test_stopped_postgres_is_a_503_within_2_s_and_the_service_recovers(
    settings: Settings, tmp_path: Path
) -> None:
    postgres, own = await own_postgres(settings, tmp_path)
    try:
        async with running("scoring", own) as scoring:
            assert await serves(scoring.client)
            postgres.stop()
            try:
                answers = await burst(
                    lambda: scoring.client.get("/v1/leads", headers=ADMIN),
                    calls=CALLS,
                    concurrency=CONCURRENCY,
                )
            finally:
                postgres.start_again()
            print("stopped postgres:", summary(answers))
            assert_answered_as_an_outage(answers)
            await eventually(lambda: serves(scoring.client), timeout=10)
    finally:
        postgres.close()


async def test_intake_takes_events_without_postgres_from_keys_it_has_seen(
    settings: Settings, tmp_path: Path
) -> None:
    postgres, own = await own_postgres(settings, tmp_path)
    await migrate_all(own)  # as `leadflow migrate` does before a rollout: intake no longer waits for it
    try:
        async with running("intake", own) as intake:
            key, _ = await intake.runtime.key_store.create(name="website", scopes=[Scope.EVENTS_WRITE])
            intake.runtime.key_store.ttl_s = 0.0  # every request asks Postgres, as after the cache's TTL
            known = {"X-API-Key": key}
            seen = unique_email()  # their data key is now in intake's cache
            assert (await post_event(intake.client, known, seen)).status_code == 202
            postgres.stop()
            try:
                ready = await intake.client.get("/readyz")
                assert ready.status_code == 200, ready.json()
                assert ready.json()["checks"]["postgres"].startswith("degraded")
                accepted = await burst(
                    lambda: post_event(intake.client, known, seen), calls=CALLS, concurrency=CONCURRENCY
                )
                new_person = await burst(lambda: post_event(intake.client, known), calls=6, concurrency=3)
                unknown = await burst(
                    lambda: post_event(intake.client, NEVER_SEEN),
                    calls=6,
                    concurrency=3,
                )
                print("intake without postgres:", summary(accepted), "unknown keys:", summary(unknown))
                assert all(a.status == 202 for a in accepted), summary(accepted)
                assert_answered_as_an_outage(unknown)
                assert_answered_as_an_outage(new_person)  # no key to seal their event with
            finally:
                postgres.start_again()
            assert (await post_event(intake.client, NEVER_SEEN)).status_code in (
                401,
                503,
            )
            await eventually(lambda: unknown_key_refused(intake.client), timeout=10)
    finally:
        postgres.close()


async def post_event(
    client: httpx.AsyncClient, headers: dict[str, str], email: str | None = None
) -> httpx.Response:
    """An event of `email`, else of someone new."""
    return await client.post("/v1/events", json=good_fit_journey(email or unique_email())[0], headers=headers)


async def unknown_key_refused(client: httpx.AsyncClient) -> bool:
    started = time.monotonic()
    answer = await post_event(client, NEVER_SEEN)
    return answer.status_code == 401 and time.monotonic() - started < 2.0


async def test_intake_starts_while_postgres_is_unreachable_and_answers_503_for_what_it_cannot_check(
    settings: Settings,
) -> None:
    nowhere = settings.model_copy(
        update={"database_url": f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/x"}
    )
    async with running("intake", nowhere) as intake:
        ready = await intake.client.get("/readyz")
        assert ready.status_code == 200, ready.json()
        assert ready.json()["checks"]["postgres"].startswith("degraded: unavailable")
        someone = await post_event(intake.client, ADMIN)  # the admin key needs no lookup; the person does
        assert someone.status_code == 503 and someone.headers["retry-after"]
        unknown = await post_event(intake.client, NEVER_SEEN)
        assert unknown.status_code == 503 and unknown.headers["retry-after"]
