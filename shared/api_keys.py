"""API keys' lifecycle: create (optionally expiring), list, revoke, rotate.

Keys are stored hashed in `auth.api_keys`; a key is shown once, when it is made. Every
change to a key (revoked, rotated, expiry moved) sets its `changed_at`, which each
instance's `KeyStore` polls to drop the key from its cache (shared/auth.py), so a revoked
key stops working everywhere within the poll interval.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import ARRAY, Boolean, Column, DateTime, MetaData, Table, Text, false, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

AUTH_SCHEMA = "auth"
AUTH_MIGRATIONS = Path(__file__).with_name("auth_migrations")

metadata = MetaData()
api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("key_hash", Text, nullable=False, unique=True),
    Column("scopes", ARRAY(Text), nullable=False),
    Column("owner", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("changed_at", DateTime(timezone=True), nullable=True),
    Column("rotated_to", Text, nullable=True),
    # A public (browser) write key: events:write only, accepted only from these origins.
    Column("public", Boolean, nullable=False, server_default=false()),
    Column("allowed_origins", ARRAY(Text), nullable=True),
    schema=AUTH_SCHEMA,
)


@dataclass(frozen=True)
class KeyRecord:
    """A key as operators see it: never the key itself, nor its hash."""

    key_id: str
    name: str
    scopes: list[str]
    owner: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    rotated_to: str | None
    public: bool = False
    allowed_origins: list[str] | None = None

    def status(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> tuple[str, str]:
    """A new key and its public id (the id is safe to log; the key is shown once)."""
    key_id = secrets.token_hex(4)
    return f"lf_{key_id}_{secrets.token_urlsafe(32)}", key_id


_RECORD_COLUMNS = [api_keys.c[name] for name in KeyRecord.__dataclass_fields__]


async def create_key(
    engine: AsyncEngine,
    *,
    name: str,
    scopes: Sequence[str],
    owner: str | None = None,
    expires_at: datetime | None = None,
    public: bool = False,
    allowed_origins: Sequence[str] = (),
) -> tuple[str, KeyRecord]:
    """A new key (shown once) and its record; a public key carries the origins it works from."""
    async with engine.begin() as conn:
        return await _insert(
            conn,
            name=name,
            scopes=scopes,
            owner=owner,
            expires_at=expires_at,
            public=public,
            allowed_origins=allowed_origins,
        )


async def public_origins(engine: AsyncEngine) -> frozenset[str]:
    """Every origin some active public key is allowed from (what a CORS preflight may be told)."""
    origins = func.unnest(api_keys.c.allowed_origins)
    query = select(origins.distinct()).where(
        api_keys.c.public, api_keys.c.revoked_at.is_(None), api_keys.c.allowed_origins.is_not(None)
    )
    async with engine.connect() as conn:
        return frozenset((await conn.execute(query)).scalars())


async def list_keys(engine: AsyncEngine, *, include_revoked: bool = True) -> list[KeyRecord]:
    query = select(*_RECORD_COLUMNS).order_by(api_keys.c.created_at, api_keys.c.key_id)
    if not include_revoked:
        query = query.where(api_keys.c.revoked_at.is_(None))
    async with engine.connect() as conn:
        return [KeyRecord(**row._mapping) for row in await conn.execute(query)]


async def revoke_key(engine: AsyncEngine, key_id: str) -> KeyRecord | None:
    """Revoke a key at once (a key already revoked keeps its first revocation time); None if unknown."""
    async with engine.begin() as conn:
        await conn.execute(
            update(api_keys)
            .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=func.now(), changed_at=func.now())
        )
        row = (await conn.execute(select(*_RECORD_COLUMNS).where(api_keys.c.key_id == key_id))).first()
    return KeyRecord(**row._mapping) if row else None


async def rotate_key(
    engine: AsyncEngine, key_id: str, *, grace: timedelta = timedelta(0)
) -> tuple[str, KeyRecord] | None:
    """A new key with the old one's name, scopes, owner and expiry; the old one stops working at
    once (grace 0) or after `grace`. None if there is no active key `key_id`."""
    async with engine.begin() as conn:
        old = (
            await conn.execute(
                select(*_RECORD_COLUMNS)
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .with_for_update()
            )
        ).first()
        if old is None:
            return None
        key, record = await _insert(
            conn,
            name=old.name,
            scopes=old.scopes,
            owner=old.owner,
            expires_at=old.expires_at,
            public=old.public,
            allowed_origins=old.allowed_origins or (),
        )
        change: dict[str, Any]
        if grace > timedelta(0):
            ends = func.now() + grace
            change = {"expires_at": ends if old.expires_at is None else func.least(old.expires_at, ends)}
        else:
            change = {"revoked_at": func.now()}
        await conn.execute(
            update(api_keys)
            .where(api_keys.c.key_id == key_id)
            .values(**change, changed_at=func.now(), rotated_to=record.key_id)
        )
    return key, record


async def _insert(
    conn: AsyncConnection,
    *,
    name: str,
    scopes: Sequence[str],
    owner: str | None,
    expires_at: datetime | None,
    public: bool = False,
    allowed_origins: Sequence[str] = (),
) -> tuple[str, KeyRecord]:
    key, key_id = generate_key()
    row = (
        await conn.execute(
            api_keys.insert()
            .values(
                key_id=key_id,
                name=name,
                key_hash=hash_key(key),
                scopes=[str(s) for s in scopes],
                owner=owner,
                expires_at=expires_at,
                public=public,
                allowed_origins=list(allowed_origins) or None,
            )
            .returning(*_RECORD_COLUMNS)
        )
    ).one()
    return key, KeyRecord(**row._mapping)
