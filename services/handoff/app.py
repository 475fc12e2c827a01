"""handoff: the sales side. Each rep's queue of MQLs under an SLA, one call per decision,
signed webhooks for sales tools."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, FastAPI, Header, Query, Request, Response
from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncEngine

from services.handoff import idempotency, retention, routing_api, store, webhooks
from services.handoff.config_files import load_routing_config, load_sla_config
from services.handoff.domain import (
    Action,
    Decision,
    HandoffConfig,
    InvalidTransition,
    ReasonRequired,
    Stage,
    StaleVersion,
    UnknownOwner,
    allowed_actions,
)
from services.handoff.handlers import HandoffNotFound, decide, make_handlers, reassign
from services.handoff.schemas import (
    DecisionBody,
    HandoffPage,
    HandoffPublic,
    HistoryEntry,
    ReassignBody,
)
from services.handoff.settings import HandoffSettings
from services.handoff.stage_gauges import make_gauge_loop
from services.handoff.timers import make_timer_loop
from services.handoff.visibility import Viewer, can_see, visible_owners
from shared.auth import Principal, Scope, require
from shared.cursors import decode_cursor, encode_cursor
from shared.events import LEAD_LIFECYCLE
from shared.http import create_app
from shared.problems import FieldError, Problem, invalid
from shared.request_rules import INT32_MAX, Instant
from shared.runtime import ServiceRuntime, ServiceSpec
from shared.settings import Settings, settings_as
from shared.unit_of_work import UnitOfWork

# The topics its consumer reads (base names); `leadflow dev` drains this group on them at Ctrl-C.
SUBSCRIPTIONS = [LEAD_LIFECYCLE]
router = APIRouter(prefix="/v1", tags=["handoffs"])
Reader = Annotated[Principal, require(Scope.HANDOFFS_READ)]
Writer = Annotated[Principal, require(Scope.HANDOFFS_WRITE)]
Manager = Annotated[Principal, require(Scope.HANDOFFS_MANAGE)]
IfMatch = Annotated[
    str | None, Header(description="The ETag you last saw; 412 if the handoff changed since.")
]
IdempotencyKey = Annotated[
    str | None, Header(max_length=200, description="Retry with the same key: the first result is returned.")
]
PROBLEM = {"description": "Problem (application/problem+json)"}
ERRORS: dict[int | str, dict[str, Any]] = {404: PROBLEM, 409: PROBLEM, 412: PROBLEM, 422: PROBLEM}
_ETAG = re.compile(r'(?:W/)?"?([0-9]{1,10})"?')
AFTER_HANDOFF: TypeAdapter[tuple[datetime, str]] = TypeAdapter(tuple[Instant, str])  # (deadline, handoff_id)


# --- helpers: who sees what, versions, cursors -------------------------------------


def _runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


def _config(request: Request) -> HandoffConfig:
    config: HandoffConfig = request.app.state.config
    return config


def _reads(request: Request) -> AsyncEngine:
    """The engine for reads: autocommit, as each read is one snapshot anyway (READ COMMITTED).

    A read then costs its SELECT alone, not BEGIN, SELECT and ROLLBACK: two round trips
    fewer on the queue listing, a third of its time in the database layer.
    """
    reads: AsyncEngine = request.app.state.reads
    return reads


def _viewer(principal: Principal) -> Viewer:
    return Viewer(owner=principal.owner, manages=principal.has(Scope.HANDOFFS_MANAGE))


ACTIONS_IN = {
    stage: [a.value for a in allowed_actions(stage) if a is not Action.REOPEN] for stage in Stage
}  # computed once: every answer lists them


def _public(row: Any) -> dict[str, Any]:
    """A handoff as the API shows it (the `HandoffPublic` shape), built straight from its row.

    Rows are already the right types, so answers skip a second validation pass; the
    API tests check that answers validate against `HandoffPublic`.
    """
    return _public_rows([row])[0]


def _public_rows(rows: Sequence[Any]) -> list[dict[str, Any]]:
    """`_public` of each row; the keys are read once (a queue page is 50 rows or more)."""
    if not rows:
        return []
    keys = [str(name) for name in rows[0]._fields]  # plain str keys for orjson
    return [dict(zip(keys, row, strict=True), allowed_actions=ACTIONS_IN[Stage(row.stage)]) for row in rows]


def _json(body: Any, *, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status_code, headers=headers, media_type="application/json"
    )


def _etag(version: int) -> str:
    return f'"{version}"'


def _expected_version(if_match: str | None) -> int | None:
    """The version an `If-Match` names: `"7"` as we send it (`W/"7"` and a bare 7 too), or
    None for `*` or no header; anything else, or a version no handoff can have, is a 422."""
    if if_match is None or if_match.strip() == "*":
        return None
    match = _ETAG.fullmatch(if_match.strip())
    if match is None or int(match[1]) > INT32_MAX:  # `version` is an Integer column
        raise invalid([FieldError("If-Match", "etag", "not an ETag returned by this API")])
    return int(match[1])


async def _visible_row(conn: Any, handoff_id: str, principal: Principal, config: HandoffConfig) -> Any:
    """The handoff, or 404 for one that does not exist or is not this rep's (ids must not leak)."""
    row = await store.get(conn, handoff_id)
    if row is None or not can_see(_viewer(principal), config, row.owner):
        raise Problem(status=404, title="Handoff not found", detail=f"no handoff {handoff_id}")
    return row


# --- queue and reads -------------------------------------------------------------------


@router.get("/handoffs", response_model=HandoffPage, responses={422: PROBLEM})
async def list_handoffs(
    request: Request,
    principal: Reader,
    status: Annotated[Stage | None, Query(description="Stage filter, e.g. `mql`.")] = None,
    owner: Annotated[str | None, Query(max_length=200)] = None,
    due_before: Annotated[Instant | None, Query(description="Only those due before this instant.")] = None,
    policy: Annotated[str | None, Query(max_length=100)] = None,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    """A queue, soonest deadline first, with each lead's profile, score and why it qualified."""
    query = store.QueueQuery(
        stage=status.value if status else None,
        owners=visible_owners(_viewer(principal), _config(request)),
        owner=owner,
        due_before=due_before,
        policy=policy,
        after=decode_cursor(cursor, AFTER_HANDOFF) if cursor else None,
        limit=limit,
    )
    async with _reads(request).connect() as conn:
        rows = await store.queue(conn, query)
    last = rows[-1] if len(rows) == limit else None
    next_cursor = encode_cursor(last.qualify_by or last.decide_by, last.handoff_id) if last else None
    return _json({"items": _public_rows(rows), "next_cursor": next_cursor})


@router.get("/handoffs/{handoff_id}", response_model=HandoffPublic, responses={404: PROBLEM})
async def get_handoff(handoff_id: str, request: Request, principal: Reader) -> Response:
    """One handoff, with the lead, its score explanation and the actions allowed now (ETag: its version)."""
    async with _reads(request).connect() as conn:
        row = await _visible_row(conn, handoff_id, principal, _config(request))
    return _json(_public(row), headers={"ETag": _etag(row.version)})


@router.get("/handoffs/{handoff_id}/history", response_model=list[HistoryEntry], responses={404: PROBLEM})
async def get_history(handoff_id: str, request: Request, principal: Reader) -> list[HistoryEntry]:
    """Every change of the handoff: who, when, from, to, reason, note."""
    async with _reads(request).connect() as conn:
        await _visible_row(conn, handoff_id, principal, _config(request))
        rows = await store.history_of(conn, handoff_id)
    return [HistoryEntry.model_validate(dict(r._mapping)) for r in rows]


# --- actions ------------------------------------------------------------------------------


async def _act(
    request: Request,
    principal: Principal,
    idempotency_key: str | None,
    work: Callable[[UnitOfWork], Awaitable[Any]],
) -> Response:
    """Run an action (once per Idempotency-Key) and answer with the handoff as it is now."""
    fingerprint = ""
    if idempotency_key is not None:
        fingerprint = idempotency.fingerprint(request.method, request.url.path, await request.body())
    try:
        async with _runtime(request).unit_of_work() as uow:
            answer = await idempotency.answer_once(
                uow,
                principal=principal.key_id,
                key=idempotency_key,
                request_fingerprint=fingerprint,
                work=lambda: _public_of(work(uow)),
            )
    except HandoffNotFound as exc:
        raise Problem(status=404, title="Handoff not found", detail=f"no handoff {exc}") from None
    except StaleVersion as exc:
        raise Problem(
            status=412,
            title="The handoff changed",
            detail=f"{exc}; fetch it again and retry",
            headers={"ETag": _etag(exc.current)},
        ) from None
    except InvalidTransition as exc:
        raise Problem(
            status=409,
            title="Not allowed in this stage",
            detail=str(exc),
            type="https://leadflow.dev/problems/invalid-transition",
            extra={"current_stage": exc.current.value, "allowed_actions": [a.value for a in exc.allowed]},
        ) from None
    except ReasonRequired as exc:
        raise invalid([FieldError(exc.field, exc.rule, str(exc))]) from None
    except UnknownOwner as exc:
        raise invalid([FieldError("owner", "unknown_owner", str(exc))]) from None
    except idempotency.KeyReused:
        reused = FieldError("Idempotency-Key", "reused", "this key was used for a different request")
        raise invalid([reused], status=422) from None
    headers = {"ETag": _etag(answer.body["version"])}
    if answer.replayed:
        headers["Idempotent-Replayed"] = "true"
    return _json(answer.body, status_code=answer.status, headers=headers)


async def _public_of(changed: Awaitable[Any]) -> dict[str, Any]:
    return _public(await changed)


def _decision_route(action: Action, summary: str) -> None:
    async def route(
        handoff_id: str,
        request: Request,
        principal: Writer,
        body: DecisionBody | None = None,
        if_match: IfMatch = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response:
        body = body or DecisionBody()
        config = _config(request)
        decision = Decision(action, principal.owner or principal.name, body.reason, body.note, body.details)
        expected = _expected_version(if_match)

        async def work(uow: UnitOfWork) -> Any:
            owners = visible_owners(_viewer(principal), config)
            return await decide(uow, config, handoff_id, decision, expected_version=expected, owners=owners)

        return await _act(request, principal, idempotency_key, work)

    route.__name__ = f"{action.value}_handoff"
    router.add_api_route(
        f"/handoffs/{{handoff_id}}/{action.value}",
        route,
        methods=["POST"],
        response_model=HandoffPublic,
        summary=summary,
        responses=ERRORS,
    )


for _action, _summary in (
    (Action.ACCEPT, "Accept an MQL for outreach (MQL → SAL)."),
    (Action.REJECT, "Reject an MQL back to marketing, with a reason (MQL → returned)."),
    (Action.QUALIFY, "Qualify an accepted lead after discovery, with BANT details (SAL → SQL)."),
    (Action.OPPORTUNITY, "Open an opportunity (SQL → SQO)."),
    (Action.RETURN, "Return an accepted lead to marketing, with a reason."),
    (Action.DISQUALIFY, "Discard the lead (spam, competitor, no fit), with a reason."),
):
    _decision_route(_action, _summary)


@router.post("/handoffs/{handoff_id}/reassign", response_model=HandoffPublic, responses=ERRORS)
async def reassign_handoff(
    handoff_id: str,
    body: ReassignBody,
    request: Request,
    principal: Manager,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Give a handoff to another rep or queue (managers)."""
    expected = _expected_version(if_match)

    async def work(uow: UnitOfWork) -> Any:
        return await reassign(
            uow,
            _config(request),
            handoff_id,
            to_owner=body.owner,
            actor=principal.owner or principal.name,
            reason=body.reason,
            expected_version=expected,
        )

    return await _act(request, principal, idempotency_key, work)


# --- webhooks ---------------------------------------------------------------------------

router.include_router(webhooks.router)  # POST/GET /v1/webhooks, GET /v1/webhooks/{id}/deliveries
router.include_router(
    routing_api.router
)  # POST /v1/handoffs/{id}/claim, /v1/reps, /v1/reps/{rep}/availability


def create(settings: Settings | None = None) -> FastAPI:
    settings = settings_as(HandoffSettings, settings)
    sla_config = load_sla_config(settings.config_file("sla.yaml"))
    routing = load_routing_config(
        settings.config_file("routing.yaml"), calendars=[c.name for c in sla_config.calendars]
    )
    config = HandoffConfig(sla=sla_config, routing=routing)
    handlers, batch_handlers = make_handlers(config)
    spec = ServiceSpec(
        name="handoff",
        metadata=store.metadata,
        migrations=store.MIGRATIONS,
        subscriptions=SUBSCRIPTIONS,
        handlers=handlers,
        batch_handlers=batch_handlers,
        loops=[
            make_timer_loop(config, poll_s=settings.sla_timer_poll_s),
            make_gauge_loop(refresh_s=settings.gauge_refresh_s),
            webhooks.make_delivery_loop(
                first_retry_s=settings.webhook_first_retry_s,
                max_age=timedelta(hours=settings.webhook_max_age_h),
                poll_s=settings.webhook_poll_s,
            ),
        ],
        retention=retention.TARGETS,
    )
    app = create_app(
        ServiceRuntime(spec, settings),
        title="leadflow handoff",
        description="MQL handoffs to sales under an SLA: the queue, the decisions, and webhooks.",
        routers=[router],
    )
    app.state.config = config
    app.state.reads = app.state.runtime.engine.execution_options(isolation_level="AUTOCOMMIT")
    return app
