"""The FastAPI app every service is built on: middleware, problems, health, metrics."""

from __future__ import annotations

import inspect
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.params import Depends
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import key_api
from shared.auth import Scope as KeyScope
from shared.auth import require
from shared.logging import get_logger, new_trace_id, trace_context
from shared.metrics import HTTP_LATENCY, HTTP_REQUESTS
from shared.openapi import complete_openapi
from shared.problems import PROBLEM_JSON, FieldError, Problem, install_problem_handlers, invalid
from shared.rate_limits import RateLimits, remembered_headers
from shared.request_rules import (
    RULE_MESSAGES,
    json_deeper_than,
    json_violations,
    may_break_content_rules,
    printable,
    text_rule,
)
from shared.runtime import ServiceRuntime

TRACE_HEADER = "X-Trace-Id"
_TRACE_KEY = TRACE_HEADER.lower().encode()
_TRACE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
# A label takes a method from this set, else `other`: the method is the client's to choose.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
log = get_logger(__name__)


class Platform:
    """What every request goes through before its route, as one plain ASGI layer:

    - a trace id (the client's `X-Trace-Id` when it is a plain token, else a new one), in the
      log context while the request runs and on its answer;
    - the `RateLimit-*` headers its quota check left (`shared.rate_limits`), on its answer;
    - the body limits: the whole body is read first (it is at most `max_bytes`), then handed
      to the app. A body over `max_bytes` is refused with a 413 whether it declares its length
      or comes in chunks, before the app reads any of it (`on_too_large` is told, for a
      service's own count); a JSON body nested deeper than `MAX_JSON_DEPTH` with a 422, before
      anything parses it. Reading ahead costs nothing: every route with a body reads all of it;
    - the request counted and timed by route, whatever answered it.

    One layer rather than one per concern, and plain ASGI rather than `@app.middleware("http")`
    (Starlette's BaseHTTPMiddleware runs the app in a task with streams between): each layer
    wraps `send` and costs a few percent of a small request's CPU.
    """

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, on_too_large: Callable[[Scope], None] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.on_too_large = on_too_large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = declared = content_type = None
        for name, value in scope["headers"]:
            if name == _TRACE_KEY:
                given = value if given is None else given  # the first one, as a header lookup
            elif name == b"content-length":
                declared = value
            elif name == b"content-type":
                content_type = value
        # A client's id is echoed in a header and every log line: only a plain token is taken.
        trace_id = given.decode() if given and _TRACE_ID.fullmatch(given) else new_trace_id()
        trace_header = (_TRACE_KEY, trace_id.encode("latin-1"))
        state = scope.setdefault("state", {})
        started = time.perf_counter()
        status = 500

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers", [])
                limits = remembered_headers(state)
                if limits:
                    present = {name.lower() for name, _ in headers}
                    headers = [*headers, *(h for h in limits if h[0] not in present)]
                message["headers"] = [*headers, trace_header]
            await send(message)

        try:
            with trace_context(trace_id):
                if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                    await self._refuse(scope, answer)
                    return
                body = await self._read_body(receive)
                if body is None:
                    await self._refuse(scope, answer)
                    return
                if content_type and b"json" in content_type and json_deeper_than(body):
                    error = FieldError("body", "max_depth", RULE_MESSAGES["max_depth"])
                    await _answer(scope, answer, invalid([error]))
                    return
                await self.app(scope, _replay(body, receive), answer)
        except _ClientGone:
            pass  # the client went away before its body was complete: nobody to answer
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")  # the route's template
            method = scope["method"] if scope["method"] in _METHODS else "other"
            HTTP_REQUESTS.labels(method, path, str(status)).inc()
            HTTP_LATENCY.labels(method, path).observe(time.perf_counter() - started)

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, or None when it grows past `max_bytes`."""
        message = await receive()
        if message["type"] != "http.request":
            raise _ClientGone
        if not message.get("more_body", False):  # the usual case: all of it at once
            body: bytes = message.get("body", b"")
            return body if len(body) <= self.max_bytes else None
        chunks: list[bytes] = []
        received = 0
        while True:
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
            message = await receive()
            if message["type"] != "http.request":
                raise _ClientGone

    async def _refuse(self, scope: Scope, send: Send) -> None:
        if self.on_too_large is not None:
            self.on_too_large(scope)
        problem = Problem(
            status=413,
            title="Request body too large",
            detail=f"The body exceeds {self.max_bytes} bytes.",
            errors=[],
            extra={"max_bytes": self.max_bytes},
        )
        await _answer(scope, send, problem)


FastRoute = Callable[[Request], Awaitable[Response | None]]


class FastRoutes:
    """POST routes answered inside `Platform` without the layers between it and the route:
    Starlette's exception layer, FastAPI's exit stack, routing and request/response wrapping,
    about a third of a small request's CPU (issue 14's single events).

    Each fast route is a function of the request that answers it, or returns None for a request
    it leaves to the declared route (before anything with an effect has run): that request goes
    on down the stack unchanged, its body replayed. An exception a fast route raises is answered
    by the handler the app registered for it, as the exception layer would; one with no handler
    but `Exception`'s goes up to Starlette's server-error layer, as from any route. The declared
    route stays the route of record: it is `scope["route"]` (metrics label it by its template,
    `refuse_unstorable_values` reads its body field) and the OpenAPI document describes it.
    """

    def __init__(
        self, app: ASGIApp, *, routes: Mapping[str, FastRoute], declared_in: list[APIRouter]
    ) -> None:
        self.app = app
        self.routes = routes
        self._declared = {path: _declared_route(declared_in, path) for path in routes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        posted = scope["type"] == "http" and scope["method"] == "POST"
        fast = self.routes.get(scope["path"]) if posted else None
        if fast is None:
            await self.app(scope, receive, send)
            return
        app: FastAPI = scope["app"]
        route = self._declared[scope["path"]]
        scope["route"], scope["endpoint"], scope["path_params"] = route, route.endpoint, {}
        request = Request(scope, receive, send)
        try:
            response = await fast(request)
        except Exception as exc:
            handler = _handler_for(app, exc)
            if handler is None:
                raise
            answered = handler(request, exc)
            response = await answered if inspect.isawaitable(answered) else answered
        if response is None:
            await self.app(scope, _replay(await request.body(), receive), send)
            return
        await response(scope, receive, send)


def _declared_route(routers: list[APIRouter], path: str) -> APIRoute:
    """The route FastAPI itself would put in `scope["route"]` for a POST to `path`."""
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute) and route.path == path and "POST" in (route.methods or ()):
                return route
    raise LookupError(f"a fast route for {path} needs a declared POST route")


def _handler_for(app: FastAPI, exc: Exception) -> Callable[[Request, Any], Any] | None:
    """The app's handler for `exc`, as Starlette's exception layer looks it up: by the exception's
    classes in order, `Exception`'s left to the server-error layer."""
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in app.exception_handlers:
            handler: Callable[[Request, Any], Any] = app.exception_handlers[cls]
            return handler
    return None


class _ClientGone(Exception):
    """The client disconnected before its body was complete."""


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the body read ahead, then whatever the client sends next."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _answer(scope: Scope, send: Send, problem: Problem) -> None:
    response = JSONResponse(
        problem.body(scope.get("path")), status_code=problem.status, media_type=PROBLEM_JSON
    )
    await response(scope, _no_receive, send)


async def refuse_unstorable_values(request: Request) -> None:
    """Refuse, as any field that breaks its schema, a value Postgres or orjson cannot take:
    text with NUL or unpaired surrogates in a path, query or header value or anywhere in a
    JSON body, and a JSON integer beyond int64 (`shared.request_rules`).

    A dependency of every route, run before the route's own (the API key check among them)
    and before its body is validated; the body is the one FastAPI already parsed, walked only
    when a fast scan of its bytes finds something that could break a rule.
    """
    errors = _unstorable_parts(request)
    body = await _parsed_json_body(request)
    if body is not None:
        errors.extend(_error(("body", *where), rule) for where, rule in json_violations(body))
    if errors:
        raise RequestValidationError(errors, body=body)


def refuse_unstorable_parts(request: Request) -> None:
    """`refuse_unstorable_values` for a request whose body is known to break no rule (a fast
    route's, scanned by `may_break_content_rules` already): its path, query and headers."""
    if errors := _unstorable_parts(request):
        raise RequestValidationError(errors, body=None)


def _unstorable_parts(request: Request) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    scope = request.scope
    located = [("path", name, value) for name, value in request.path_params.items() if isinstance(value, str)]
    if scope.get("query_string"):
        located += [("query", name, value) for name, value in request.query_params.multi_items()]
    # Header text is latin-1, which has no surrogates: only a NUL byte can break a rule there.
    if any(b"\x00" in name or b"\x00" in value for name, value in scope["headers"]):
        located += [("header", name, value) for name, value in request.headers.items()]
    for location, name, text in located:
        if (rule := text_rule(text)) is not None:
            errors.append(_error((location, printable(name)), rule))
    return errors


async def _parsed_json_body(request: Request) -> Any:
    route = request.scope.get("route")
    if getattr(route, "body_field", None) is None or "json" not in request.headers.get("content-type", ""):
        return None
    raw = await request.body()
    if not raw or not may_break_content_rules(raw):
        return None
    try:
        return await request.json()  # parsed once already, by FastAPI, for the route's body
    except ValueError:
        return None


def _error(loc: tuple[str | int, ...], rule: str) -> dict[str, Any]:
    return {"loc": loc, "type": rule, "msg": RULE_MESSAGES[rule]}


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def create_app(
    runtime: ServiceRuntime,
    *,
    title: str,
    description: str,
    routers: list[APIRouter],
    on_startup: Callable[[ServiceRuntime], Awaitable[None]] | None = None,
    on_too_large: Callable[[Scope], None] | None = None,
    fast_routes: Mapping[str, FastRoute] | None = None,
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        if on_startup:
            await on_startup(runtime)
        yield
        await runtime.stop()

    app = FastAPI(
        title=title,
        description=description,
        version="0.1.0",
        lifespan=lifespan,
        dependencies=[Depends(refuse_unstorable_values)],
        # FastAPI's own OpenTelemetry hooks: leadflow's metrics and logs are its own (Prometheus,
        # structured logs), and with them on, every request looks up the OTel providers.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.runtime = runtime
    app.state.key_store = runtime.key_store
    app.state.rate_limits = RateLimits.of(runtime.settings)
    install_problem_handlers(app)

    if fast_routes:  # inside Platform (the layer added first is the innermost)
        app.add_middleware(FastRoutes, routes=fast_routes, declared_in=routers)
    app.add_middleware(Platform, max_bytes=runtime.settings.max_body_bytes, on_too_large=on_too_large)

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
