"""API keys: stored hashed, each with scopes; a FastAPI dependency checks them and the
key's rate limit.

Keys are random 256-bit tokens, so a plain SHA-256 is the right hash (a slow
password hash buys nothing against guessing and would cost every request).
The admin key comes from `LEADFLOW_ADMIN_KEY` and is never stored.

A key costs the database one lookup per `ttl_s` at most: found keys are cached, and so,
for `unknown_ttl_s`, are unknown ones; a string that is not shaped like a key is refused
without a lookup. Revocations reach every instance's cache through `follow_changes`, which
reads the keys changed lately every `LEADFLOW_API_KEY_CHANGES_POLL_S` (0.5 s): a cached key
is trusted only while that poll is fresh, else it is looked up again.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.api_keys import AUTH_MIGRATIONS, AUTH_SCHEMA, api_keys, create_key, hash_key
from shared.logging import get_logger
from shared.outages import DependencyUnavailable, is_outage
from shared.problems import Problem
from shared.rate_limits import RateLimits, remember_headers

__all__ = [
    "AUTH_MIGRATIONS",
    "AUTH_SCHEMA",
    "KeyStore",
    "Principal",
    "Scope",
    "admit",
    "hash_key",
    "presented_key",
    "require",
]

ADMIN_KEY_ID = "admin"
_KEY_SHAPE = re.compile(r"lf_[0-9a-f]{8}_[A-Za-z0-9_-]{43}")  # what generate_key makes
_CHANGES_OVERLAP = timedelta(seconds=5)  # re-read a little of the last poll: commits land late
log = get_logger(__name__)


class Scope(StrEnum):
    EVENTS_WRITE = "events:write"
    LEADS_READ = "leads:read"
    HANDOFFS_READ = "handoffs:read"
    HANDOFFS_WRITE = "handoffs:write"
    HANDOFFS_MANAGE = "handoffs:manage"
    METRICS_READ = "metrics:read"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    scopes: frozenset[str]
    owner: str | None = None
    expires_at: datetime | None = None
    public: bool = False  # a browser key: sends events only, from `origins` only
    origins: frozenset[str] = frozenset()

    def has(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes

    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= datetime.now(UTC)


@dataclass
class KeyStore:
    """Looks keys up by hash, with short in-process caches so intake stays fast.

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
    unknown_ttl_s: float = 10.0
    unknown_max: int = 10_000
    changes_poll_s: float = 0.5
    _cache: dict[str, tuple[float, Principal]] = field(default_factory=dict)  # digest: (cached at, key)
    _unknown: dict[str, float] = field(default_factory=dict)
    _unreachable_until: float = 0.0
    _changes_seen_at: float | None = None  # when follow_changes last read the changes

    def knows(self, key: str) -> bool:
        """Whether `key` is the admin key or a key in the cache (no lookup needed)."""
        if hmac.compare_digest(key.encode(), self.admin_key.encode()):
            return True
        cached = self._cache.get(hash_key(key))
        return cached is not None and self._fresh(cached[0], time.monotonic())

    async def authenticate(self, key: str) -> Principal | None:
        if hmac.compare_digest(key.encode(), self.admin_key.encode()):
            return Principal(key_id=ADMIN_KEY_ID, name="admin", scopes=frozenset({Scope.ADMIN}))
        if not _KEY_SHAPE.fullmatch(key):
            return None
        digest = hash_key(key)
        now = time.monotonic()
        if self._unknown.get(digest, 0.0) > now:
            return None
        principal = await self._principal(digest, now)
        if principal is None or principal.expired():
            self._remember_unknown(digest, now)
            return None
        return principal

    async def _principal(self, digest: str, now: float) -> Principal | None:
        cached = self._cache.get(digest)
        if cached and self._fresh(cached[0], now):
            return cached[1]
        stale = cached[1] if cached and now < cached[0] + self.ttl_s + self.stale_s else None
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
            self._cache[digest] = (now, principal)
        else:
            self._cache.pop(digest, None)
        return principal

    def _fresh(self, cached_at: float, now: float) -> bool:
        """A cached key holds for `ttl_s` while revocations are followed; without a recent read of
        the changes (not started yet, or Postgres away), for one poll interval only."""
        seen = self._changes_seen_at
        followed = seen is not None and now - seen <= 2 * self.changes_poll_s
        return now < cached_at + (self.ttl_s if followed else min(self.ttl_s, self.changes_poll_s))

    def _remember_unknown(self, digest: str, now: float) -> None:
        if len(self._unknown) >= self.unknown_max:
            for old in [d for d, until in self._unknown.items() if until <= now] or list(self._unknown)[:1]:
                del self._unknown[old]
        self._unknown[digest] = now + self.unknown_ttl_s

    async def _lookup(self, digest: str) -> Principal | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(api_keys).where(api_keys.c.key_hash == digest, api_keys.c.revoked_at.is_(None))
                )
            ).first()
        if row is None:
            return None
        return Principal(
            key_id=row.key_id,
            name=row.name,
            scopes=frozenset(row.scopes),
            owner=row.owner,
            expires_at=row.expires_at,
            public=row.public,
            origins=frozenset(row.allowed_origins or ()),
        )

    async def create(
        self, *, name: str, scopes: list[Scope], owner: str | None = None, expires_at: datetime | None = None
    ) -> tuple[str, str]:
        """A new key (shown once) and its id; see shared/api_keys.py for the whole lifecycle."""
        key, record = await create_key(
            self.engine, name=name, scopes=scopes, owner=owner, expires_at=expires_at
        )
        return key, record.key_id

    def forget(self, key_id: str) -> None:
        """Drop a key from this instance's cache at once (the others follow the change feed)."""
        for digest in [d for d, (_, p) in self._cache.items() if p.key_id == key_id]:
            del self._cache[digest]

    async def follow_changes(self, stop: asyncio.Event) -> None:
        """Drop the keys revoked or rotated on any instance from this one's cache, every poll."""
        since: datetime | None = None
        failing = False
        while not stop.is_set():
            try:
                since = await self._drop_changed(since)
                self._changes_seen_at = time.monotonic()
                failing = False
            except Exception as exc:
                if not failing:
                    log.warning("api_key_changes_unreadable", error=type(exc).__name__)
                failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.changes_poll_s)

    async def _drop_changed(self, since: datetime | None) -> datetime:
        after = since - _CHANGES_OVERLAP if since else func.clock_timestamp() - _CHANGES_OVERLAP
        query = select(func.clock_timestamp(), func.array_agg(api_keys.c.key_hash)).where(
            api_keys.c.changed_at > after
        )
        async with self.engine.connect() as conn:
            read_at, digests = (await conn.execute(query)).one()
        for digest in digests or ():
            self._cache.pop(digest, None)
        read: datetime = read_at
        return read


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key of `X-API-Key`, `Authorization: Bearer <key>`, or HTTP Basic with the key as the
    user name and an empty password (how Segment's and RudderStack's SDKs send a write key)."""
    if x_api_key:
        return x_api_key.strip()
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    if scheme.lower() == "basic":
        try:
            user, _, _ = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user.strip() or None
    return None


def require(scope: Scope):  # type: ignore[no-untyped-def]
    """A dependency that admits a request whose API key carries `scope`."""

    async def dependency(
        request: Request,
        authorization: Annotated[str | None, Header()] = None,
        x_api_key: Annotated[str | None, Header()] = None,
    ) -> Principal:
        return await admit(request, presented_key(authorization, x_api_key), scope)

    return Depends(dependency)


async def admit(request: Request, key: str | None, scope: Scope) -> Principal:
    """The principal of `key` if it may make this request with `scope`: known, scoped, within
    its rate limits, and, for a public (browser) key, from one of its origins."""
    if not key:
        raise Problem(
            status=401,
            title="API key required",
            detail="Send the key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = await _authenticate(request, key)
    if not principal.has(scope):
        raise Problem(status=403, title="Missing scope", detail=f"This call needs the '{scope}' scope.")
    if principal.public:
        await _admit_browser(request, principal)
    if principal.key_id != ADMIN_KEY_ID:  # the operator's own key, never handed out
        limits: RateLimits = request.app.state.rate_limits
        quota = await limits.hit_key(principal.key_id, scope)
        if quota is not None:
            remember_headers(request.state, quota)
            if not quota.allowed:
                raise quota.refusal(f"This key's limit for '{scope}' is {quota.limit} per window.")
    return principal


async def _admit_browser(request: Request, principal: Principal) -> None:
    """A public key is in every visitor's page: it works only from its own origins, and each
    visitor's address has a quota of its own, so one client cannot spend the key's."""
    origin = request.headers.get("origin")
    if origin not in principal.origins:
        raise Problem(
            status=403,
            title="Origin not allowed",
            detail="This public write key works only from the origins listed for it.",
        )
    limits: RateLimits = request.app.state.rate_limits
    address = request.client.host if request.client else "unknown"
    quota = await limits.hit_public_address(principal.key_id, address)
    if not quota.allowed:
        raise quota.refusal(f"A public key admits {quota.limit} requests per window from one address.")


async def _authenticate(request: Request, key: str) -> Principal:
    """The key's principal; 401 for an unknown, revoked or expired key. An address that failed
    too often gets a 429 before its key is looked up (a key already cached still works)."""
    store: KeyStore = request.app.state.key_store
    limits: RateLimits = request.app.state.rate_limits
    address = request.client.host if request.client else "unknown"
    if not store.knows(key):
        exhausted = await limits.failed_auth_exhausted(address)
        if exhausted is not None:
            raise exhausted.refusal("Too many failed authentications from this address.")
    principal = await store.authenticate(key)
    if principal is None:
        await limits.count_failed_auth(address)
        raise Problem(
            status=401, title="Unknown, revoked or expired API key", headers={"WWW-Authenticate": "Bearer"}
        )
    return principal
