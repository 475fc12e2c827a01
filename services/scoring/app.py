"""scoring: keeps each lead's profile and score; emits `lead.scored` and `lead.mql_reached`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from services.intake.domain import normalize_email
from services.scoring import store
from services.scoring.handlers import make_handlers
from services.scoring.model import load_model
from shared.auth import Principal, Scope, require
from shared.events import LEAD_EVENTS, LEAD_LIFECYCLE, ScoreContribution
from shared.http import create_app
from shared.problems import Problem
from shared.runtime import ServiceRuntime, ServiceSpec
from shared.settings import Settings, get_settings

router = APIRouter(prefix="/v1", tags=["leads"])
Reader = Annotated[Principal, require(Scope.LEADS_READ)]


class LeadPublic(BaseModel):
    lead_id: str
    email: str | None
    stage: str
    cycle: int
    score: int
    fit_points: int
    grade: str
    disqualified: str | None
    model_version: str | None
    explanation: list[ScoreContribution]
    traits: dict[str, Any]
    events_count: int
    mql_at: datetime | None
    updated_at: datetime


class LeadList(BaseModel):
    items: list[LeadPublic]


def _public(row: Any) -> LeadPublic:
    return LeadPublic.model_validate(row._mapping, from_attributes=False)


@router.get("/leads/{lead_id}", response_model=LeadPublic, responses={404: {"description": "Problem"}})
async def get_lead(lead_id: str, request: Request, _: Reader) -> LeadPublic:
    """One lead: profile, stage, score, grade and why."""
    runtime: ServiceRuntime = request.app.state.runtime
    async with runtime.engine.connect() as conn:
        row = await store.lead_by_id(conn, lead_id)
    if row is None:
        raise Problem(status=404, title="Lead not found", detail=f"no lead {lead_id}")
    return _public(row)


@router.get("/leads", response_model=LeadList)
async def list_leads(
    request: Request,
    _: Reader,
    email: Annotated[str | None, Query(max_length=254)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> LeadList:
    """Leads, newest change first; `email=` finds one person (case and spaces ignored)."""
    runtime: ServiceRuntime = request.app.state.runtime
    async with runtime.engine.connect() as conn:
        rows = await store.find_leads(conn, email=normalize_email(email) if email else None, limit=limit)
    return LeadList(items=[_public(r) for r in rows])


def create(settings: Settings | None = None):  # type: ignore[no-untyped-def]
    settings = settings or get_settings()
    model = load_model(settings.config_file("scoring-model.yaml"))  # a bad model refuses to start
    handlers, batch_handlers = make_handlers(model)
    spec = ServiceSpec(
        name="scoring",
        metadata=store.metadata,
        migrations=store.MIGRATIONS,
        subscriptions=[LEAD_EVENTS, LEAD_LIFECYCLE],
        handlers=handlers,
        batch_handlers=batch_handlers,
    )
    app = create_app(
        ServiceRuntime(spec, settings),
        title="leadflow scoring",
        description="Lead profiles, scores, fit grades and their explanations.",
        routers=[router],
    )
    app.state.model = model
    return app
