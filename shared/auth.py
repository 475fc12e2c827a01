"""API keys: stored hashed, each with scopes; a FastAPI dependency checks them.

Keys are random 256-bit tokens, so a plain SHA-256 is the right hash (a slow
password hash buys nothing against guessing and would cost every request).
The admin key comes from `LEADFLOW_ADMIN_KEY` and is never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy import ARRAY, Column, DateTime, MetaData, Table, Text, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.outages import DependencyUnavailable, is_outage
from shared.problems import Problem

AUTH_SCHEMA = "auth"
AUTH_MIGRATIONS = Path(__file__).with_name("auth_migrations")


class Scope(StrEnum):
    EVENTS_WRITE = "events:write"
    LEADS_READ = "leads:read"
    HANDOFFS_READ = "handoffs:read"
    HANDOFFS_WRITE = "handoffs:write"
    HANDOFFS_MANAGE = "handoffs:manage"
    METRICS_READ = "metrics:read"
    ADMIN = "admin"


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
    schema=AUTH_SCHEMA,
)


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    scopes: frozenset[str]
    owner: str | None = None

    def has(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> tuple[str, str]:
    """A new key and its public id (the id is safe to log; the key is shown once)."""
    key_id = secrets.token_hex(4)
    return f"lf_{key_id}_{secrets.token_urlsafe(32)}", key_id


@dataclass
class KeyStore:
    """Looks keys up by hash, with a short in-process cache so intake stays fast.

    While Postgres is unreachable, a key found within the last `stale_s` seconds is still
    accepted from the cache (a key revoked meanwhile too, for that long), so intake keeps
    taking events; a key not in the cache gets a 503. After a failed lookup the database is
    not asked again for `recheck_s`, so requests are not each held by a timeout.
    """

    engine: AsyncEngine
    admin_key: str
    ttl_s: float = 30.0
    stale_s: float = 300.0
    recheck_s: float = 2.0
    _cache: dict[str, tuple[float, Principal]] = field(default_factory=dict)
    _unreachable_until: float = 0.0

    async def authenticate(self, key: str) -> Principal | None:
        if hmac.compare_digest(key.encode(), self.admin_key.encode()):
            return Principal(key_id="admin", name="admin", scopes=frozenset({Scope.ADMIN}))
        digest = hash_key(key)
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached and cached[0] > now:
            return cached[1]
        stale = cached[1] if cached and now < cached[0] + self.stale_s else None
        if now < self._unreachable_until:
            if stale:
                return stale
            raise DependencyUnavailable("Postgres is unreachable and this API key is not in the cache")
        try:
            principal = await self._lookup(digest)
        except Exception as exc:
            if not is_outage(exc):
                raise
            self._unreachable_until = now + self.recheck_s
            if stale:
                return stale
            raise
        if principal is not None:
            self._cache[digest] = (now + self.ttl_s, principal)
        else:
            self._cache.pop(digest, None)
        return principal

    async def _lookup(self, digest: str) -> Principal | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(api_keys).where(api_keys.c.key_hash == digest, api_keys.c.revoked_at.is_(None))
                )
            ).first()
        if row is None:
            return None
        return Principal(key_id=row.key_id, name=row.name, scopes=frozenset(row.scopes), owner=row.owner)

    async def create(self, *, name: str, scopes: list[Scope], owner: str | None = None) -> tuple[str, str]:
        key, key_id = generate_key()
        async with self.engine.begin() as conn:
            await conn.execute(
                api_keys.insert().values(
                    key_id=key_id,
                    name=name,
                    key_hash=hash_key(key),
                    scopes=[str(s) for s in scopes],
                    owner=owner,
                )
            )
        return key, key_id


def _presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    if x_api_key:
        return x_api_key.strip()
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None


def require(scope: Scope):  # type: ignore[no-untyped-def]
    """A dependency that admits a request whose API key carries `scope`."""

    async def dependency(
        request: Request,
        authorization: Annotated[str | None, Header()] = None,
        x_api_key: Annotated[str | None, Header()] = None,
    ) -> Principal:
        key = _presented_key(authorization, x_api_key)
        if not key:
            raise Problem(
                status=401,
                title="API key required",
                detail="Send the key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        store: KeyStore = request.app.state.key_store
        principal = await store.authenticate(key)
        if principal is None:
            raise Problem(
                status=401, title="Unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"}
            )
        if not principal.has(scope):
            raise Problem(status=403, title="Missing scope", detail=f"This call needs the '{scope}' scope.")
        return principal

    return Depends(dependency)
