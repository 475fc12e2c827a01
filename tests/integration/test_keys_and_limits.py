"""API keys against the real Postgres: per-key rate limits (429, Retry-After, RateLimit-*),
failed authentication limited per address before any lookup, the key lifecycle through the
admin API and the CLI, and revocation seen by another instance within a second."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import api_keys
from shared.api_keys import generate_key
from shared.settings import Settings
from tests.support import ADMIN, RunningService, good_fit_journey, running, unique_email


@contextmanager
def key_lookups(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every statement that looks a key up by its hash, as the engine runs it."""
    seen: list[str] = []

    def count(conn, cursor, statement: str, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if "api_keys" in statement and "key_hash =" in statement:
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


@asynccontextmanager
async def client_at(service: RunningService, address: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=service.app, client=(address, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
        yield client


async def new_key(client: httpx.AsyncClient, *scopes: str, **fields: str) -> dict:
    made = await client.post("/v1/keys", json={"name": "t", "scopes": list(scopes), **fields}, headers=ADMIN)
    assert made.status_code == 201, made.text
    return made.json()


def event_body() -> dict:
    return good_fit_journey(unique_email())[0]


async def test_a_key_over_its_limit_gets_429_with_retry_after_and_the_ratelimit_headers(
    settings: Settings,
) -> None:
    settings = settings.model_copy(
        update={"rate_limits": {**settings.rate_limits, "events:write": "3/minute"}}
    )
    async with running("intake", settings) as intake:
        writer = {"X-API-Key": (await new_key(intake.client, "events:write"))["key"]}
        answers = [
            await intake.client.post("/v1/events", json=event_body(), headers=writer) for _ in range(4)
        ]
        assert [a.status_code for a in answers] == [202, 202, 202, 429]
        assert [a.headers["ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
        assert {a.headers["ratelimit-limit"] for a in answers} == {"3"}
        refused = answers[-1]
        assert refused.headers["content-type"] == "application/problem+json"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert 0 < int(refused.headers["ratelimit-reset"]) <= 60
        assert "events:write" in refused.json()["detail"]

        other = {"X-API-Key": (await new_key(intake.client, "events:write"))["key"]}
        assert (await intake.client.post("/v1/events", json=event_body(), headers=other)).status_code == 202
        operator = await intake.client.post("/v1/events", json=event_body(), headers=ADMIN)
        assert operator.status_code == 202 and "ratelimit-limit" not in operator.headers


async def test_failed_authentication_is_limited_per_address_before_any_key_lookup(
    settings: Settings,
) -> None:
    settings = settings.model_copy(update={"rate_limit_failed_auth": "5/minute"})
    async with running("intake", settings) as intake:
        real = {"X-API-Key": (await new_key(intake.client, "events:write"))["key"]}
        async with (
            client_at(intake, "203.0.113.7") as attacker,
            client_at(intake, "198.51.100.9") as neighbour,
        ):
            assert (await attacker.post("/v1/events", json=event_body(), headers=real)).status_code == 202
            with key_lookups(intake.runtime.engine) as lookups:
                statuses = [
                    (await attacker.post("/v1/events", json={}, headers={"X-API-Key": generate_key()[0]}))
                    for _ in range(200)
                ]
                assert [s.status_code for s in statuses] == [401] * 5 + [429] * 195
                assert int(statuses[-1].headers["retry-after"]) >= 1
                assert len(lookups) == 5  # the address was refused before its keys were looked up
                assert (await attacker.post("/v1/events", json=event_body(), headers=real)).status_code == 202

                garbage = {"X-API-Key": generate_key()[0]}
                repeated = [(await neighbour.get("/metrics", headers=garbage)).status_code for _ in range(4)]
                assert repeated == [401] * 4
                assert len(lookups) == 6  # an unknown key is remembered: one lookup for four tries
                shapeless = await neighbour.get("/metrics", headers={"X-API-Key": "lf_nope"})
                assert shapeless.status_code == 401 and len(lookups) == 6  # not shaped like a key
                assert (await neighbour.get("/metrics", headers=garbage)).status_code == 429


async def test_keys_are_listed_rotated_revoked_and_expire_through_the_admin_api(settings: Settings) -> None:
    async with running("intake", settings) as intake:
        client = intake.client
        made = await new_key(client, "events:write", expires_in="30d")
        assert made["status"] == "active" and made["key"].startswith(f"lf_{made['key_id']}_")
        expires_at = datetime.fromisoformat(made["expires_at"])
        assert timedelta(days=29.9) < expires_at - datetime.now(UTC) <= timedelta(days=30)
        old = {"X-API-Key": made["key"]}
        assert (await client.post("/v1/events", json=event_body(), headers=old)).status_code == 202
        assert (await client.get("/v1/keys", headers=old)).status_code == 403

        rotated = await client.post(f"/v1/keys/{made['key_id']}/rotate", headers=ADMIN)
        assert rotated.status_code == 201
        new = rotated.json()
        assert (new["scopes"], new["expires_at"]) == (["events:write"], made["expires_at"])
        assert (await client.post("/v1/events", json=event_body(), headers=old)).status_code == 401
        fresh = {"X-API-Key": new["key"]}
        assert (await client.post("/v1/events", json=event_body(), headers=fresh)).status_code == 202

        revoked = await client.post(f"/v1/keys/{new['key_id']}/revoke", headers=ADMIN)
        assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
        assert (await client.post("/v1/events", json=event_body(), headers=fresh)).status_code == 401
        assert (await client.post("/v1/keys/nokey/revoke", headers=ADMIN)).status_code == 404
        assert (await client.post(f"/v1/keys/{new['key_id']}/rotate", headers=ADMIN)).status_code == 404

        brief, record = await api_keys.create_key(
            intake.runtime.engine,
            name="brief",
            scopes=["events:write"],
            expires_at=datetime.now(UTC) + timedelta(seconds=1.5),
        )
        assert (
            await client.post("/v1/events", json=event_body(), headers={"X-API-Key": brief})
        ).status_code == 202
        await asyncio.sleep(2.0)
        late = await client.post("/v1/events", json=event_body(), headers={"X-API-Key": brief})
        assert late.status_code == 401  # expired while in the cache

        listed = {k["key_id"]: k for k in (await client.get("/v1/keys", headers=ADMIN)).json()}
        assert listed[made["key_id"]]["status"] == "revoked"
        assert listed[made["key_id"]]["rotated_to"] == new["key_id"]
        assert listed[new["key_id"]]["status"] == "revoked"
        assert listed[record.key_id]["status"] == "expired"
        assert all("key" not in k and "key_hash" not in k for k in listed.values())
        invalid = await client.post("/v1/keys", json={"name": "x", "scopes": ["everything"]}, headers=ADMIN)
        assert invalid.status_code == 422


async def test_a_revoked_key_is_refused_within_a_second_by_another_instance(settings: Settings) -> None:
    async with running("intake", settings) as first, running("intake", settings) as second:
        made = await new_key(first.client, "events:write")
        key = {"X-API-Key": made["key"]}
        for instance in (first, second):  # cached by both
            assert (
                await instance.client.post("/v1/events", json=event_body(), headers=key)
            ).status_code == 202
        assert (
            await first.client.post(f"/v1/keys/{made['key_id']}/revoke", headers=ADMIN)
        ).status_code == 200
        revoked_at = time.monotonic()
        with key_lookups(second.runtime.engine) as lookups:
            while (await second.client.post("/v1/events", json=event_body(), headers=key)).status_code == 202:
                assert time.monotonic() - revoked_at < 1.0, "the second instance still takes the revoked key"
                await asyncio.sleep(0.05)
        assert time.monotonic() - revoked_at < 1.0
        assert len(lookups) <= 1  # the change feed dropped it from the cache; no lookup per request


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LEADFLOW_DATABASE_URL": settings.database_url}
    return subprocess.run(
        [sys.executable, "-m", "leadflow", "keys", *args], env=env, capture_output=True, text=True, timeout=60
    )


async def test_keys_are_created_listed_rotated_and_revoked_with_the_cli(settings: Settings) -> None:
    made = cli(settings, "create", "--scope", "events:write", "--name", "forms", "--expires-in", "30d")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    key_id = key.split("_")[1]
    assert "expires in 30d" in made.stderr
    listed = cli(settings, "list")
    assert key_id in listed.stdout and "active" in listed.stdout and "expires=20" in listed.stdout
    assert key not in listed.stdout
    async with running("intake", settings) as intake:
        ok = await intake.client.post("/v1/events", json=event_body(), headers={"X-API-Key": key})
        assert ok.status_code == 202
        rotated = cli(settings, "rotate", key_id)
        assert rotated.returncode == 0, rotated.stderr
        new_key = rotated.stdout.strip()
        await asyncio.sleep(1.0)
        assert (
            await intake.client.post("/v1/events", json=event_body(), headers={"X-API-Key": key})
        ).status_code == 401
        assert (
            await intake.client.post("/v1/events", json=event_body(), headers={"X-API-Key": new_key})
        ).status_code == 202
        assert cli(settings, "revoke", new_key.split("_")[1]).returncode == 0
        await asyncio.sleep(1.0)
        assert (
            await intake.client.post("/v1/events", json=event_body(), headers={"X-API-Key": new_key})
        ).status_code == 401
    assert "revoked" not in cli(settings, "list").stdout
    assert cli(settings, "list", "--all").stdout.count("revoked") == 2
    assert cli(settings, "revoke", "nokey").returncode == 1
    bad = cli(settings, "create", "--scope", "events:write", "--expires-in", "soon")
    assert bad.returncode != 0 and "--expires-in" in bad.stderr
