"""`leadflow keys`: create (optionally expiring), list, revoke and rotate API keys.

The same operations as the admin API (`/v1/keys`, shared/key_api.py), run against Postgres
directly; running services follow revocations within `LEADFLOW_API_KEY_CHANGES_POLL_S`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from shared import api_keys
from shared.api_keys import KeyRecord
from shared.auth import AUTH_MIGRATIONS, AUTH_SCHEMA, Scope
from shared.db import make_engine, migrate
from shared.settings import Settings


@asynccontextmanager
async def _auth_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(settings, bounded=False)
    try:
        await migrate(engine, schema=AUTH_SCHEMA, versions_dir=AUTH_MIGRATIONS)
        yield engine
    finally:
        await engine.dispose()


async def create_key(
    settings: Settings,
    *,
    name: str,
    scopes: list[Scope],
    owner: str | None,
    expires_in: timedelta | None = None,
    origins: list[str] | None = None,
) -> tuple[str, str]:
    """A new key (shown once) and its id; with `origins`, a public (browser) key."""
    expires_at = datetime.now(UTC) + expires_in if expires_in else None
    async with _auth_engine(settings) as engine:
        key, record = await api_keys.create_key(
            engine,
            name=name,
            scopes=scopes,
            owner=owner,
            expires_at=expires_at,
            public=bool(origins),
            allowed_origins=origins or (),
        )
    return key, record.key_id


async def list_keys(settings: Settings, *, include_revoked: bool) -> list[KeyRecord]:
    async with _auth_engine(settings) as engine:
        return await api_keys.list_keys(engine, include_revoked=include_revoked)


async def revoke_key(settings: Settings, key_id: str) -> KeyRecord | None:
    async with _auth_engine(settings) as engine:
        return await api_keys.revoke_key(engine, key_id)


async def rotate_key(settings: Settings, key_id: str, *, grace: timedelta) -> tuple[str, KeyRecord] | None:
    async with _auth_engine(settings) as engine:
        return await api_keys.rotate_key(engine, key_id, grace=grace)
