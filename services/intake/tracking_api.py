"""The Segment HTTP Tracking API on intake: `/v1/batch`, `/v1/track`, `/v1/identify`, `/v1/page`,
`/v1/screen`, `/v1/group`, `/v1/alias` (and analytics.js's `/v1/b`, `/v1/t`, ...), so Segment's
and RudderStack's SDKs send to leadflow by changing their host.

The write key comes as HTTP Basic (user name, empty password), Bearer, X-API-Key or the body's
`writeKey`. Bodies are read as they come (JSON sent as text/plain by analytics.js, gzip by
RudderStack's SDK), within Segment's limits: 500 KB a batch, 32 KB a message.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.responses import Response

from services.intake.browser_cors import BrowserCors, BrowserOrigins
from services.intake.config_files import load_tracking_mapping
from services.intake.metrics import EVENT_PATHS
from services.intake.settings import IntakeSettings
from services.intake.tracking_handlers import Outlets, accept_messages
from services.intake.tracking_mapping import Rules
from services.intake.tracking_schemas import (
    MAX_BATCH_BYTES,
    MAX_MESSAGE_BYTES,
    ROUTE_TYPES,
    MessageType,
    TrackingAccepted,
    TrackingBatch,
    TrackingMessage,
    instant_or_none,
)
from shared.auth import Scope, admit, presented_key
from shared.http import refuse_unstorable_values
from shared.problems import FieldError, Problem, invalid
from shared.request_rules import RULE_MESSAGES, json_deeper_than
from shared.runtime import ServiceRuntime

router = APIRouter(prefix="/v1", tags=["tracking"])
TRACKING_PATHS = frozenset({"/v1/batch", "/v1/b", *(f"/v1/{name}" for name in ROUTE_TYPES)})
_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Unknown write key (Problem)"},
    413: {"description": "Over Segment's limits: 500 KB a batch, 32 KB a message (Problem)"},
    415: {"description": "A Content-Encoding other than gzip (Problem)"},
    422: {"description": "Not a Tracking API body (Problem)"},
}


def install(app: FastAPI, settings: IntakeSettings) -> None:
    """The mapping file, and CORS for the pages of public (browser) keys' origins."""
    plan = app.state.tracking_plan
    mapping = load_tracking_mapping(settings.config_file("tracking-mapping.yaml"), plan)
    app.state.tracking_rules = Rules(plan=plan, mapping=mapping, limits=app.state.event_limits)
    runtime: ServiceRuntime = app.state.runtime
    origins = BrowserOrigins(lambda: runtime.engine, ttl_s=settings.public_origins_ttl_s)
    app.add_middleware(BrowserCors, origins=origins, paths=TRACKING_PATHS | EVENT_PATHS)


async def _accept(request: Request, route_type: MessageType | None) -> JSONResponse:
    try:
        return await _accept_messages(request, route_type)
    except Problem as problem:
        raise _worded_for_sdks(problem) from None


def _worded_for_sdks(problem: Problem) -> Problem:
    """Problem+json that Segment's and RudderStack's SDKs can also read: they report a failed
    call by its `code` and `message` (RudderStack's fails on a body without them)."""
    code = problem.errors[0].rule if problem.errors else _CODES.get(problem.status, "error")
    problem.extra = {"code": code, "message": problem.detail or problem.title, **problem.extra}
    return problem


_CODES = {401: "unauthorized", 403: "forbidden", 429: "rate_limited", 503: "unavailable"}


async def _accept_messages(request: Request, route_type: MessageType | None) -> JSONResponse:
    runtime: ServiceRuntime = request.app.state.runtime
    if not runtime.started.is_set():
        detail = "intake is still connecting to Kafka"
        raise Problem(status=503, title="Not ready", detail=detail, headers={"Retry-After": "1"})
    header_key = presented_key(request.headers.get("authorization"), request.headers.get("x-api-key"))
    if header_key:
        await admit(request, header_key, Scope.EVENTS_WRITE)
    body = _parsed(await _body(request, limit=MAX_MESSAGE_BYTES if route_type else MAX_BATCH_BYTES))
    if not header_key:
        write_key = body.get("writeKey")
        await admit(request, write_key if isinstance(write_key, str) else None, Scope.EVENTS_WRITE)
    messages = _messages(body, batch=route_type is None)
    context = body.get("context") if route_type is None else None
    sent_at = body.get("sentAt") if route_type is None else None
    accepted, failed = await accept_messages(
        messages,
        route_type=route_type,
        batch_context=context if isinstance(context, dict) else {},
        sent_at=instant_or_none(sent_at),
        rules=request.app.state.tracking_rules,
        outlets=Outlets(
            runtime.producer,
            runtime.topics,
            runtime.settings.produce_timeout_s,
            request.app.state.tracking_sealer,
        ),
    )
    answer = TrackingAccepted(accepted=accepted, failed=failed)
    return JSONResponse(answer.model_dump())  # 200 as Segment's API: RudderStack's SDK takes only that


async def _body(request: Request, *, limit: int) -> bytes:
    raw = await request.body()
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding == "gzip":
        raw = _gunzip(raw, limit=limit)
    elif encoding not in ("identity", ""):
        raise _refusal(415, "content-encoding", "encoding", "send the body as is or gzip-compressed")
    if len(raw) > limit:
        raise _refusal(413, "body", "max_bytes", f"a request holds at most {limit // 1024} KB")
    return raw


def _gunzip(raw: bytes, *, limit: int) -> bytes:
    """At most `limit` + 1 bytes of the decompressed body: a small bomb stays small."""
    try:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        return inflater.decompress(raw, limit + 1)
    except (zlib.error, gzip.BadGzipFile):
        raise _refusal(400, "body", "gzip", "the body is not valid gzip") from None


def _parsed(raw: bytes) -> dict[str, Any]:
    if json_deeper_than(raw):
        raise invalid([FieldError("body", "max_depth", RULE_MESSAGES["max_depth"])])
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _refusal(400, "body", "json", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise invalid([FieldError("body", "object", "the body is a JSON object")])
    return body


def _messages(body: dict[str, Any], *, batch: bool) -> list[Any]:
    if not batch:
        return [body]
    messages = body.get("batch")
    if not isinstance(messages, list):
        raise invalid([FieldError("batch", "batch_required", "a batch body holds its messages in `batch`")])
    if len(messages) > 1 and any(len(orjson.dumps(m)) > MAX_MESSAGE_BYTES for m in messages):
        over = next(i for i, m in enumerate(messages) if len(orjson.dumps(m)) > MAX_MESSAGE_BYTES)
        raise _refusal(413, f"batch.{over}", "max_message_bytes", "a message holds at most 32 KB")
    return messages


def _refusal(status: int, field: str, rule: str, message: str) -> Problem:
    return Problem(
        status=status,
        title="The request is refused",
        detail=message,
        errors=[FieldError(field, rule, message)],
    )


def _route(route_type: MessageType | None):  # type: ignore[no-untyped-def]
    async def route(request: Request) -> JSONResponse:
        return await _accept(request, route_type)

    return route


async def _fast(route_type: MessageType | None, request: Request) -> Response:
    """A Tracking API call from the platform layer (`shared.http.FastRoutes`): the declared route's
    work, the app's request rules first, as its dependency."""
    await refuse_unstorable_values(request)
    return await _accept(request, route_type)


FAST_ROUTES: dict[str, Callable[[Request], Awaitable[Response | None]]] = {
    "/v1/batch": partial(_fast, None),
    "/v1/b": partial(_fast, None),
    **{f"/v1/{path}": partial(_fast, route_type) for path, route_type in ROUTE_TYPES.items()},
}


def _documented(model: type[BaseModel], *, required: list[str]) -> dict[str, Any]:
    """The body as documented: the fields and what they mean, but no types, since a message that
    does not fit is accepted and listed as a failed event rather than refused."""
    schema = model.model_json_schema()
    fields = {
        name: {"description": spec.get("description", spec.get("title", name))}
        for name, spec in schema["properties"].items()
    }
    body = {"type": "object", "description": model.__doc__, "properties": fields, "required": required}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": body}}}}


_BATCH_BODY = _documented(TrackingBatch, required=["batch"])
_BATCH_BODY["requestBody"]["content"]["application/json"]["schema"]["properties"]["batch"] = {
    "type": "array",
    "description": "The messages, each shaped as the single calls' bodies.",
}
_MESSAGE_BODY = _documented(TrackingMessage, required=[])
router.add_api_route(
    "/batch",
    _route(None),
    methods=["POST"],
    status_code=200,
    response_model=TrackingAccepted,
    responses=_RESPONSES,
    summary="Segment's batch call: up to 500 KB of messages, each mapped or listed as failed.",
    openapi_extra=_BATCH_BODY,
)
router.add_api_route("/b", _route(None), methods=["POST"], include_in_schema=False)
for _path, _type in ROUTE_TYPES.items():
    router.add_api_route(
        f"/{_path}",
        _route(_type),
        methods=["POST"],
        status_code=200,
        response_model=TrackingAccepted,
        responses=_RESPONSES,
        summary=f"Segment's {_type} call (one message, at most 32 KB).",
        openapi_extra=_MESSAGE_BODY,
        include_in_schema=len(_path) > 1,  # analytics.js's one-letter paths are aliases
    )
