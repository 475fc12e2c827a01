"""Rate limits: per API key and scope, and per client address for failed authentication.

Built on `limits`: each key has a quota per scope a route requires (`LEADFLOW_RATE_LIMITS`,
e.g. events:write higher than reads), counted in a moving window by default
(`LEADFLOW_RATE_LIMIT_STRATEGY`). A request over it gets a 429 with `Retry-After`; every
limited answer carries `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`
(seconds until a request is free again). Failed authentications count per client address
(`LEADFLOW_RATE_LIMIT_FAILED_AUTH`); an address over it gets a 429 before its key is looked up.
A public (browser) write key is also limited per client address (`LEADFLOW_RATE_LIMIT_PUBLIC_ADDRESS`).

Counts live in `LEADFLOW_RATE_LIMIT_STORAGE`: `memory://` (the default) counts in each
process alone, so N instances admit N times the limit; a shared storage such as
`redis://host:6379` (with the `redis` client installed) makes the limit hold across them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.storage import storage_from_string
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.problems import Problem
from shared.settings import Settings

Strategy = Literal["moving-window", "fixed-window", "sliding-window-counter"]
_STRATEGIES: dict[str, type[RateLimiter]] = {
    "moving-window": MovingWindowRateLimiter,
    "fixed-window": FixedWindowRateLimiter,
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
}
_STATE_KEY = "rate_limit_headers"


@dataclass(frozen=True)
class Quota:
    """Where a key (or an address) stands in its window."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
        }

    def refusal(self, detail: str) -> Problem:
        return Problem(
            status=429,
            title="Too many requests",
            detail=detail,
            headers={**self.headers(), "Retry-After": str(max(self.reset_s, 1))},
        )


class RateLimits:
    """The quotas of one instance, over the configured storage and strategy."""

    def __init__(
        self,
        *,
        storage_uri: str,
        strategy: Strategy,
        per_scope: Mapping[str, str],
        failed_auth: str,
        public_address: str = "50/second",
    ) -> None:
        uri = storage_uri if storage_uri.startswith("async+") else f"async+{storage_uri}"
        storage = storage_from_string(uri)
        assert isinstance(storage, Storage)
        self._limiter = _STRATEGIES[strategy](storage)
        self._per_scope = {scope: parse(limit) for scope, limit in per_scope.items()}
        self._failed_auth = parse(failed_auth)
        self._public_address = parse(public_address)

    @classmethod
    def of(cls, settings: Settings) -> RateLimits:
        return cls(
            storage_uri=settings.rate_limit_storage,
            strategy=settings.rate_limit_strategy,
            per_scope=settings.rate_limits,
            failed_auth=settings.rate_limit_failed_auth,
            public_address=settings.rate_limit_public_address,
        )

    async def hit_key(self, key_id: str, scope: str) -> Quota | None:
        """Count a request of `key_id` against its quota for `scope`; None if `scope` has none."""
        item = self._per_scope.get(scope)
        if item is None:
            return None
        allowed = await self._limiter.hit(item, "key", key_id, scope)
        return await self._quota(item, allowed, "key", key_id, scope)

    async def hit_public_address(self, key_id: str, address: str) -> Quota:
        """Count a request of a public (browser) key from one client address."""
        allowed = await self._limiter.hit(self._public_address, "public", key_id, address)
        return await self._quota(self._public_address, allowed, "public", key_id, address)

    async def failed_auth_exhausted(self, address: str) -> Quota | None:
        """The address's quota if it has no failed authentication left, else None (nothing counted)."""
        if await self._limiter.test(self._failed_auth, "failed-auth", address):
            return None
        return await self._quota(self._failed_auth, False, "failed-auth", address)

    async def count_failed_auth(self, address: str) -> None:
        await self._limiter.hit(self._failed_auth, "failed-auth", address)

    async def _quota(self, item: RateLimitItem, allowed: bool, *identifiers: str) -> Quota:
        stats = await self._limiter.get_window_stats(item, *identifiers)
        reset_s = max(math.ceil(stats.reset_time - time.time()), 0)
        return Quota(allowed, item.amount, max(stats.remaining, 0), reset_s)


def remember_headers(state: object, quota: Quota) -> None:
    """Have `RateLimitHeaders` put the quota's headers on the request's answer."""
    setattr(state, _STATE_KEY, quota.headers())


class RateLimitHeaders:
    """Adds the `RateLimit-*` headers a request's quota check left on its state to the answer
    (routes answer with their own Response objects, which dependencies cannot add headers to)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})

        async def send_with_headers(message: Message) -> None:
            headers = state.get(_STATE_KEY)
            if message["type"] == "http.response.start" and headers:
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n.lower().encode(), v.encode()) for n, v in headers.items()]
                message["headers"] = [*message.get("headers", []), *(h for h in extra if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, send_with_headers)
