"""CORS for browser tracking: intake's event routes answer pages from the origins that some
public write key lists, and nothing else.

A preflight carries no key, so it is answered for the union of every active public key's
origins (re-read from the shared `auth` schema every `LEADFLOW_PUBLIC_ORIGINS_TTL_S`); the
request that follows is checked against its own key's origins (`shared.auth.admit`). A page
from any other origin gets a 403 to its preflight and no `Access-Control-Allow-Origin`, so
the browser neither sends its events nor reads an answer. Other paths (keys, metrics) get
no CORS at all: a public key cannot read anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.api_keys import public_origins
from shared.logging import get_logger
from shared.outages import is_outage
from shared.problems import PROBLEM_JSON, Problem

ALLOWED_HEADERS = "anonymousid, authorization, content-type, x-api-key, x-retry-count, x-trace-id"
EXPOSED_HEADERS = "retry-after, ratelimit-limit, ratelimit-remaining, ratelimit-reset, x-trace-id"
log = get_logger(__name__)


class BrowserOrigins:
    """The origins public keys allow, cached for `ttl_s`; the last list read stands while
    Postgres is away (a preflight is only the browser asking; the key is checked after)."""

    def __init__(self, engine: Callable[[], AsyncEngine], *, ttl_s: float) -> None:
        self._engine = engine
        self._ttl_s = ttl_s
        self._origins: frozenset[str] = frozenset()
        self._read_at = float("-inf")

    async def allows(self, origin: str) -> bool:
        now = time.monotonic()
        if now - self._read_at > self._ttl_s:
            try:
                self._origins = await public_origins(self._engine())
            except Exception as exc:
                if not is_outage(exc):
                    raise
                log.warning("public_origins_unreadable", error=type(exc).__name__)
            self._read_at = now
        return origin in self._origins


class BrowserCors:
    """Answers preflights and adds the CORS headers to the event routes' answers."""

    def __init__(self, app: ASGIApp, *, origins: BrowserOrigins, paths: frozenset[str]) -> None:
        self.app = app
        self.origins = origins
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        origin = headers.get(b"origin", b"").decode("latin-1")
        if not origin:
            await self.app(scope, receive, send)
            return
        allowed = await self.origins.allows(origin)
        if scope["method"] == "OPTIONS" and b"access-control-request-method" in headers:
            await self._preflight(scope, send, origin, allowed, headers[b"access-control-request-method"])
            return
        if not allowed:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_cors_headers(origin)]
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(self, scope: Scope, send: Send, origin: str, allowed: bool, method: bytes) -> None:
        if not allowed or method != b"POST":
            problem = Problem(
                status=403,
                title="Origin not allowed",
                detail="No public write key lists this origin; only POST is answered.",
            )
            body = orjson.dumps(problem.body(scope.get("path")))
            start = [(b"content-type", PROBLEM_JSON.encode()), (b"vary", b"Origin")]
            await send({"type": "http.response.start", "status": 403, "headers": start})
            await send({"type": "http.response.body", "body": body})
            return
        preflight = [
            *_cors_headers(origin),
            (b"access-control-allow-methods", b"POST, OPTIONS"),
            (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
            (b"access-control-max-age", b"600"),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": preflight})
        await send({"type": "http.response.body", "body": b""})


def _cors_headers(origin: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-expose-headers", EXPOSED_HEADERS.encode()),
        (b"vary", b"Origin"),
    ]
