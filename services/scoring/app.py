"""scoring: keeps each lead's profile and score; emits `lead.scored` and `lead.mql_reached`."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, FastAPI, Query, Request
from pydantic import TypeAdapter

from services.scoring import retention, store
from services.scoring.accounts import api as accounts_api
from services.scoring.accounts import store as account_store
from services.scoring.accounts.schemas import LeadAccount
from services.scoring.config_files import load_learning_config, load_model
from services.scoring.decay_loop import make_decay_loop
from services.scoring.erasure_api import router as erasure_router
from services.scoring.handlers import make_handlers
from services.scoring.learned_scoring import LearnedScoring
from services.scoring.model import ScoringModel
from services.scoring.schemas import (
    ActiveModel,
    ConflictPage,
    EventConflict,
    LeadPage,
    LeadPublic,
    TimelineEntry,
)
from services.scoring.settings import ScoringSettings
from services.scoring.state_scoring import score_as_of
from shared.auth import Principal, Scope, require
from shared.cursors import decode_cursor, encode_cursor
from shared.envelope import utcnow
from shared.events import LEAD_EVENTS, LEAD_LIFECYCLE, ScoreContribution
from shared.http import create_app
from shared.identities import normalize_email
from shared.problems import Problem
from shared.request_rules import Int32
from shared.runtime import ServiceRuntime, ServiceSpec
from shared.settings import Settings, settings_as

# The topics its consumer reads (base names); `leadflow dev` drains this group on them at Ctrl-C.
SUBSCRIPTIONS = [LEAD_EVENTS, LEAD_LIFECYCLE]
router = APIRouter(prefix="/v1", tags=["leads"])
events_router = APIRouter(prefix="/v1", tags=["events"])
Reader = Annotated[Principal, require(Scope.LEADS_READ)]
Admin = Annotated[Principal, require(Scope.ADMIN)]
PROBLEM = {"description": "Problem (application/problem+json)"}
Grade = Literal["A", "B", "C", "D"]
AFTER_LEAD: TypeAdapter[tuple[int, str]] = TypeAdapter(tuple[Int32, str])  # a page ends at (score, lead_id)


def _runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


@router.get("/leads/{lead_id}", response_model=LeadPublic, responses={404: PROBLEM})
async def get_lead(lead_id: str, request: Request, _: Reader) -> LeadPublic:
    """One lead: profile, stage, grade, its score and why as of now, and its account."""
    now = utcnow()
    async with _runtime(request).engine.connect() as conn:
        row = await store.lead_by_id(conn, lead_id)
        if row is None:
            raise _not_found(lead_id)
        current = await score_as_of(conn, request.app.state.model, row, at=now)
        account = await account_store.lead_account(conn, lead_id)
    lead = dict(row._mapping)
    if current is not None:  # decay goes on after the last event: the score as of now
        explanation = [
            ScoreContribution(rule=c.rule, kind=c.kind, points=c.points, detail=c.detail)
            for c in current.contributions
        ]
        lead.update(score=current.score, explanation=explanation, score_as_of=now)
    lead["account"] = LeadAccount.model_validate(dict(account._mapping)) if account else None
    return LeadPublic.model_validate(lead)


@router.get("/leads", response_model=LeadPage, responses={422: PROBLEM})
async def list_leads(
    request: Request,
    _: Reader,
    email: Annotated[str | None, Query(max_length=254, description="Case and spaces ignored.")] = None,
    stage: Annotated[str | None, Query(max_length=20, examples=["mql"])] = None,
    min_score: Annotated[Int32 | None, Query()] = None,
    grade: Annotated[list[Grade] | None, Query(description="Repeat for several grades.")] = None,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> LeadPage:
    """Leads, highest score first, filtered; paginated with `next_cursor`."""
    query = store.LeadQuery(
        email=normalize_email(email) if email else None,
        stage=stage,
        min_score=min_score,
        grades=tuple(grade or ()),
        after=decode_cursor(cursor, AFTER_LEAD) if cursor else None,
        limit=limit,
    )
    async with _runtime(request).engine.connect() as conn:
        rows = await store.find_leads(conn, query)
    items = [LeadPublic.model_validate(dict(r._mapping)) for r in rows]
    last = items[-1] if len(items) == limit else None
    return LeadPage(items=items, next_cursor=encode_cursor(last.score, last.lead_id) if last else None)


@router.get("/leads/{lead_id}/timeline", response_model=list[TimelineEntry], responses={404: PROBLEM})
async def get_timeline(lead_id: str, request: Request, _: Reader) -> list[TimelineEntry]:
    """The lead's events and score changes, oldest first."""
    async with _runtime(request).engine.connect() as conn:
        if await store.lead_by_id(conn, lead_id) is None:
            raise _not_found(lead_id)
        events, changes = await store.timeline(conn, lead_id)
    entries = [
        TimelineEntry(
            at=e.occurred_at, kind="event", event_type=e.type, event_id=e.event_id, properties=e.properties
        )
        for e in events
    ] + [
        TimelineEntry(
            at=c.occurred_at,
            kind="score",
            score=c.score,
            grade=c.grade,
            stage=c.stage,
            model_version=c.model_version,
            cause=c.cause,
        )
        for c in changes
    ]
    # A score change sorts after the events of the same instant that caused it.
    return sorted(entries, key=lambda e: (e.at, e.kind == "score"))


@router.get("/models/active", response_model=ActiveModel)
async def active_model(request: Request, _: Reader) -> ActiveModel:
    """The scoring model in force: its version and rules."""
    model: ScoringModel = request.app.state.model
    return ActiveModel(version=model.version, model=model.model_dump(mode="json"))


@events_router.get("/events/conflicts", response_model=ConflictPage, responses={422: PROBLEM})
async def list_event_conflicts(
    request: Request,
    _: Admin,
    before: Annotated[int | None, Query(ge=1, description="`next_before` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ConflictPage:
    """Events that reused a stored event_id with another body, newest first (the first body is kept)."""
    async with _runtime(request).engine.connect() as conn:
        rows = await store.conflicts_page(conn, before=before, limit=limit)
    items = [EventConflict.model_validate(dict(row._mapping)) for row in rows]
    return ConflictPage(items=items, next_before=items[-1].seq if len(items) == limit else None)


def _not_found(lead_id: str) -> Problem:
    return Problem(status=404, title="Lead not found", detail=f"no lead {lead_id}")


def create(settings: Settings | None = None) -> FastAPI:
    settings = settings_as(ScoringSettings, settings)
    model = load_model(settings.config_file("scoring-model.yaml"))  # a bad model refuses to start
    learned = LearnedScoring(model, load_learning_config(settings.config_file("learning.yaml")))
    handlers, batch_handlers = make_handlers(model, learned)
    loops = [learned.model_loop(poll_s=settings.predictive_model_poll_s)]
    if settings.scoring_decay_poll_s > 0:
        loops.append(make_decay_loop(model, poll_s=settings.scoring_decay_poll_s))
    spec = ServiceSpec(
        name="scoring",
        metadata=store.metadata,
        migrations=store.MIGRATIONS,
        subscriptions=SUBSCRIPTIONS,
        handlers=handlers,
        batch_handlers=batch_handlers,
        loops=loops,
        retention=retention.targets(model),
    )
    app = create_app(
        ServiceRuntime(spec, settings),
        title="leadflow scoring",
        description="Lead profiles, scores, fit grades and their explanations.",
        routers=[router, accounts_api.router, events_router, erasure_router],
    )
    app.state.model = model
    return app
