"""The FastAPI app every service is built on: middleware, problems, health, metrics."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.logging import get_logger, new_trace_id, trace_context
from shared.metrics import HTTP_LATENCY, HTTP_REQUESTS
from shared.openapi import complete_openapi
from shared.problems import PROBLEM_JSON, Problem, install_problem_handlers
from shared.runtime import ServiceRuntime

TRACE_HEADER = "X-Trace-Id"
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
    install_problem_handlers(app)

    @app.middleware("http")
    async def trace_and_measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        trace_id = request.headers.get(TRACE_HEADER) or new_trace_id()
        started = time.perf_counter()
        with trace_context(trace_id):
            response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        HTTP_REQUESTS.labels(request.method, path, str(response.status_code)).inc()
        HTTP_LATENCY.labels(request.method, path).observe(time.perf_counter() - started)
        response.headers[TRACE_HEADER] = trace_id
        return response

    app.add_middleware(BodySizeLimit, max_bytes=runtime.settings.max_body_bytes)

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
        ready = all(v == "ok" for v in checks.values())
        body: dict[str, Any] = {"status": "ready" if ready else "not_ready", "checks": checks}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics.", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    for router in routers:
        app.include_router(router)
    complete_openapi(app)
    return app
