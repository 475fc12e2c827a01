"""The FastAPI app every service is built on: middleware, problems, health, metrics."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Response
from fastapi.params import Depends
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import key_api
from shared.auth import Scope as KeyScope
from shared.auth import require
from shared.logging import get_logger, new_trace_id, trace_context
from shared.metrics import HTTP_LATENCY, HTTP_REQUESTS
from shared.openapi import complete_openapi
from shared.problems import PROBLEM_JSON, Problem, install_problem_handlers
from shared.rate_limits import RateLimitHeaders, RateLimits
from shared.runtime import ServiceRuntime

TRACE_HEADER = "X-Trace-Id"
# A label takes a method from this set, else `other`: the method is the client's to choose.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
log = get_logger(__name__)


class BodySizeLimit:
    """Refuse bodies over `max_bytes` with a 413 before they are read into memory."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        problem = Problem(
            status=413,
            title="Request body too large",
            detail=f"The body exceeds {self.max_bytes} bytes.",
            errors=[],
            extra={"max_bytes": self.max_bytes},
        )
        response = JSONResponse(problem.body(scope.get("path")), status_code=413, media_type=PROBLEM_JSON)
        await response(scope, _no_receive, send)


class TraceAndMeasure:
    """Give every request a trace id (the client's `X-Trace-Id`, else a new one), answer with
    it, and count and time the request by route.

    Plain ASGI rather than `@app.middleware("http")`: Starlette's BaseHTTPMiddleware runs the
    app in a task with streams between, which cost about 6% of an API request's CPU.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = TRACE_HEADER.lower().encode()
        given = next((value for name, value in scope["headers"] if name == header), None)
        trace_id = given.decode("latin-1") if given else new_trace_id()
        started = time.perf_counter()
        status = 500

        async def send_with_trace(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (header, trace_id.encode("latin-1"))]
            await send(message)

        try:
            with trace_context(trace_id):
                await self.app(scope, receive, send_with_trace)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")  # the route's template
            method = scope["method"] if scope["method"] in _METHODS else "other"
            HTTP_REQUESTS.labels(method, path, str(status)).inc()
            HTTP_LATENCY.labels(method, path).observe(time.perf_counter() - started)


class _TooLarge(Exception):
    pass


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def create_app(
    runtime: ServiceRuntime,
    *,
    title: str,
    description: str,
    routers: list[APIRouter],
    on_startup: Callable[[ServiceRuntime], Awaitable[None]] | None = None,
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        if on_startup:
            await on_startup(runtime)
        yield
        await runtime.stop()

    app = FastAPI(title=title, description=description, version="0.1.0", lifespan=lifespan)
    app.state.runtime = runtime
    app.state.key_store = runtime.key_store
    app.state.rate_limits = RateLimits.of(runtime.settings)
    install_problem_handlers(app)

    app.add_middleware(BodySizeLimit, max_bytes=runtime.settings.max_body_bytes)
    app.add_middleware(RateLimitHeaders)
    app.add_middleware(TraceAndMeasure)

    @app.get("/healthz", tags=["ops"], summary="The process is alive.")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": runtime.spec.name}

    @app.get(
        "/readyz",
        tags=["ops"],
        summary="Postgres and Kafka are reachable.",
        responses={503: {"description": "Not ready: Postgres or Kafka is unreachable."}},
    )
    async def readyz() -> JSONResponse:
        checks = await runtime.readiness()
        ready = runtime.ready(checks)
        body: dict[str, Any] = {"status": "ready" if ready else "not_ready", "checks": checks}
        return JSONResponse(body, status_code=200 if ready else 503)

    metrics_reader: Depends = require(KeyScope.METRICS_READ)

    @app.get(
        "/metrics",
        tags=["ops"],
        summary="Prometheus metrics (scope metrics:read).",
        include_in_schema=False,
        dependencies=[metrics_reader],
    )
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    for router in [*routers, key_api.router]:
        app.include_router(router)
    complete_openapi(app)
    return app
