"""handoff: the sales side. A queue of MQLs under an SLA, and one call per decision."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from pydantic import BaseModel, Field

from services.handoff import store
from services.handoff.domain import Action, InvalidTransition, ReasonRequired, Stage, allowed_actions
from services.handoff.handlers import Decision, HandoffNotFound, decide, make_handlers
from services.handoff.sla import SlaConfig, load_sla_config
from shared.auth import Principal, Scope, require
from shared.events import LEAD_LIFECYCLE, ScoreContribution
from shared.http import create_app
from shared.problems import FieldError, Problem, invalid
from shared.runtime import ServiceRuntime, ServiceSpec
from shared.settings import Settings, get_settings

router = APIRouter(prefix="/v1", tags=["handoffs"])
Reader = Annotated[Principal, require(Scope.HANDOFFS_READ)]
Writer = Annotated[Principal, require(Scope.HANDOFFS_WRITE)]
PROBLEM = {"description": "Problem (application/problem+json)"}


class HandoffPublic(BaseModel):
    handoff_id: str
    lead_id: str
    cycle: int
    stage: str
    owner: str
    policy: str
    decide_by: datetime
    qualify_by: datetime | None
    score: int
    grade: str
    explanation: list[ScoreContribution] = Field(description="Why the lead qualified.")
    lead: dict[str, Any] = Field(description="Email and profile traits at MQL time.")
    channel: str | None
    campaign: str | None
    version: int
    allowed_actions: list[str]
    created_at: datetime
    updated_at: datetime


class HandoffList(BaseModel):
    items: list[HandoffPublic]


class DecisionBody(BaseModel):
    reason: str | None = Field(default=None, max_length=200, description="Required to reject or return.")
    note: str | None = Field(default=None, max_length=2000, description="Required when reason is `other`.")
    details: dict[str, Any] = Field(default_factory=dict, description="BANT or opportunity fields.")


class HistoryEntry(BaseModel):
    at: datetime
    actor: str
    action: str
    from_stage: str | None
    to_stage: str
    reason: str | None
    note: str | None


def _public(row: Any) -> HandoffPublic:
    values = dict(row._mapping)
    values["allowed_actions"] = [a.value for a in allowed_actions(Stage(row.stage)) if a is not Action.REOPEN]
    return HandoffPublic.model_validate(values)


def _runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


@router.get("/handoffs", response_model=HandoffList)
async def list_handoffs(
    request: Request,
    _: Reader,
    status: Annotated[Stage | None, Query(description="Stage filter, e.g. `mql`.")] = None,
    owner: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> HandoffList:
    """A queue: handoffs sorted by their decision deadline."""
    async with _runtime(request).engine.connect() as conn:
        rows = await store.queue(conn, stage=status.value if status else None, owner=owner, limit=limit)
    return HandoffList(items=[_public(r) for r in rows])


@router.get("/handoffs/{handoff_id}", response_model=HandoffPublic, responses={404: PROBLEM})
async def get_handoff(handoff_id: str, request: Request, _: Reader) -> HandoffPublic:
    """One handoff, with the lead, its score explanation and the actions allowed now."""
    async with _runtime(request).engine.connect() as conn:
        row = await store.get(conn, handoff_id)
    if row is None:
        raise _not_found(handoff_id)
    return _public(row)


@router.get("/handoffs/{handoff_id}/history", response_model=list[HistoryEntry], responses={404: PROBLEM})
async def get_history(handoff_id: str, request: Request, _: Reader) -> list[HistoryEntry]:
    """Every change of the handoff: who, when, from, to, reason, note."""
    async with _runtime(request).engine.connect() as conn:
        if await store.get(conn, handoff_id) is None:
            raise _not_found(handoff_id)
        rows = await store.history_of(conn, handoff_id)
    return [HistoryEntry.model_validate(dict(r._mapping)) for r in rows]


def _decision_route(action: Action, summary: str) -> None:
    async def route(
        handoff_id: str, request: Request, principal: Writer, body: DecisionBody | None = None
    ) -> HandoffPublic:
        body = body or DecisionBody()
        runtime = _runtime(request)
        decision = Decision(action, principal.owner or principal.name, body.reason, body.note, body.details)
        try:
            async with runtime.unit_of_work() as uow:
                row = await decide(uow, request.app.state.sla, handoff_id, decision)
        except HandoffNotFound:
            raise _not_found(handoff_id) from None
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
        return _public(row)

    route.__name__ = f"{action.value}_handoff"
    router.add_api_route(
        f"/handoffs/{{handoff_id}}/{action.value}",
        route,
        methods=["POST"],
        response_model=HandoffPublic,
        summary=summary,
        responses={404: PROBLEM, 409: PROBLEM, 422: PROBLEM},
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


def _not_found(handoff_id: str) -> Problem:
    return Problem(status=404, title="Handoff not found", detail=f"no handoff {handoff_id}")


def create(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    config: SlaConfig = load_sla_config(settings.config_file("sla.yaml"))
    spec = ServiceSpec(
        name="handoff",
        metadata=store.metadata,
        migrations=store.MIGRATIONS,
        subscriptions=[LEAD_LIFECYCLE],
        handlers=make_handlers(config),
    )
    app = create_app(
        ServiceRuntime(spec, settings),
        title="leadflow handoff",
        description="MQL handoffs to sales under an SLA: the queue and the decisions.",
        routers=[router],
    )
    app.state.sla = config
    return app
