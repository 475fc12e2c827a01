"""The routing routes of the handoff API: claiming a handoff from a queue, and reps with their
load and out-of-office windows. Included in the handoff router (under its /v1)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Request, Response

from services.handoff import store
from services.handoff.assignments import UnknownRep, claim_handoff, set_availability
from services.handoff.availability import AwayWindow, away_window
from services.handoff.claims import ClaimRefused
from services.handoff.domain import HandoffConfig, Stage, allowed_actions
from services.handoff.schemas import (
    AvailabilityBody,
    ClaimBody,
    HandoffPublic,
    OutOfOfficeWindow,
    RepAvailability,
    RepPublic,
)
from services.handoff.visibility import Viewer, can_see
from shared.auth import Principal, Scope, require
from shared.envelope import utcnow
from shared.problems import FieldError, Problem, invalid

router = APIRouter(tags=["routing"])
Reader = Annotated[Principal, require(Scope.HANDOFFS_READ)]
Writer = Annotated[Principal, require(Scope.HANDOFFS_WRITE)]
PROBLEM = {"description": "Problem (application/problem+json)"}
CLAIMED_ELSEWHERE = "https://leadflow.dev/problems/claim-refused"


def _config(request: Request) -> HandoffConfig:
    config: HandoffConfig = request.app.state.config
    return config


def _manages(principal: Principal) -> bool:
    """Managers and integrations (keys without a rep) act for any rep; a rep's key for its rep."""
    return principal.owner is None or principal.has(Scope.HANDOFFS_MANAGE)


def _acting_rep(principal: Principal, named: str | None) -> str:
    if named is None:
        if principal.owner is None:
            raise invalid([FieldError("rep", "required", "a key without a rep must name the rep who claims")])
        return principal.owner
    if named != principal.owner and not _manages(principal):
        raise Problem(status=403, title="Forbidden", detail="a rep's key acts for its own rep only")
    return named


def _known_rep(config: HandoffConfig, rep: str, field: str = "rep") -> None:
    if not config.routing.is_rep(rep):
        raise invalid([FieldError(field, "unknown_rep", f"{rep!r} is not a rep of the routing config")])


@router.post(
    "/handoffs/{handoff_id}/claim",
    response_model=HandoffPublic,
    responses={403: PROBLEM, 404: PROBLEM, 409: PROBLEM, 422: PROBLEM},
)
async def claim(
    handoff_id: str, request: Request, principal: Writer, body: ClaimBody | None = None
) -> Response:
    """Take an MQL waiting in a queue you see; the first claim wins, the others get 409."""
    config = _config(request)
    rep = _acting_rep(principal, (body or ClaimBody()).rep)
    _known_rep(config, rep)
    viewer = Viewer(owner=principal.owner, manages=principal.has(Scope.HANDOFFS_MANAGE))
    try:
        async with request.app.state.runtime.unit_of_work() as uow:
            row = await store.get(uow.conn, handoff_id)
            if row is None or not _may_claim(viewer, config, row, rep):
                raise Problem(status=404, title="Handoff not found", detail=f"no handoff {handoff_id}")
            changed = await claim_handoff(uow, config, handoff_id, rep=rep, row=row)
    except ClaimRefused as exc:
        raise Problem(
            status=409,
            title="Cannot claim",
            detail=str(exc),
            type=CLAIMED_ELSEWHERE,
            extra={"rule": exc.rule},
        ) from None
    answer = {str(name): value for name, value in changed._mapping.items()}  # plain str keys for orjson
    answer["allowed_actions"] = [a.value for a in allowed_actions(Stage(changed.stage))]
    headers = {"ETag": f'"{changed.version}"'}
    return Response(orjson.dumps(answer), media_type="application/json", headers=headers)


def _may_claim(viewer: Viewer, config: HandoffConfig, row: Any, rep: str) -> bool:
    """Whether the caller sees the handoff, or saw it in its team's queue before another rep took
    it (so the late claim is a 409, not a 404); anyone else's handoff does not exist for them."""
    return (
        row.owner == rep
        or can_see(viewer, config, row.owner)
        or (row.team is not None and can_see(viewer, config, row.team))
    )


@router.get("/reps", response_model=list[RepPublic])
async def list_reps(request: Request, _: Reader) -> list[RepPublic]:
    """Every rep of the routing config: teams, weight, cap, open handoffs, and whether away now."""
    config, now = _config(request), utcnow()
    reps = sorted(config.routing.rep_names())
    async with request.app.state.runtime.engine.connect() as conn:
        counts = await store.open_handoffs(conn, reps)
        windows = [*config.routing.away_windows(), *await store.away_windows(conn, now=now)]
    return [
        RepPublic(
            rep=rep,
            teams=sorted(t.name for t in config.routing.teams if rep in t.members),
            weight=config.routing.weight_of(rep),
            capacity=config.routing.capacity_of(rep),
            open_handoffs=counts.get(rep, 0),
            away_now=away_window(windows, rep, now) is not None,
        )
        for rep in reps
    ]


@router.get("/reps/{rep}/availability", response_model=RepAvailability, responses={422: PROBLEM})
async def get_availability(rep: str, request: Request, _: Reader) -> RepAvailability:
    """The rep's out-of-office windows (set over the API and in the routing file) and whether away now."""
    config, now = _config(request), utcnow()
    _known_rep(config, rep)
    async with request.app.state.runtime.engine.connect() as conn:
        set_over_api = await store.away_windows(conn, now=now, rep=rep)
    configured = [w for w in config.routing.away_windows() if w.rep == rep]
    current = away_window([*set_over_api, *configured], rep, now)
    return RepAvailability(
        rep=rep,
        away_now=current is not None,
        back_at=current.end if current else None,
        out_of_office=[_window(w) for w in set_over_api],
        configured=[_window(w) for w in configured],
    )


@router.put(
    "/reps/{rep}/availability", response_model=RepAvailability, responses={403: PROBLEM, 422: PROBLEM}
)
async def put_availability(rep: str, body: AvailabilityBody, request: Request, principal: Writer) -> Any:
    """Set a rep's out-of-office windows (replacing those set before); a rep's key sets its own."""
    config = _config(request)
    if rep != principal.owner and not _manages(principal):
        raise Problem(status=403, title="Forbidden", detail="a rep's key sets its own availability only")
    _known_rep(config, rep)
    problems = [
        FieldError(f"out_of_office.{i}.end", "after_start", "end must be after start")
        for i, w in enumerate(body.out_of_office)
        if w.end <= w.start
    ]
    problems += [
        FieldError(f"out_of_office.{i}.backup", "not_self", "a rep cannot be their own backup")
        for i, w in enumerate(body.out_of_office)
        if w.backup == rep
    ]
    if problems:
        raise invalid(problems)
    windows = [AwayWindow(rep, w.start, w.end, w.backup) for w in body.out_of_office]
    try:
        async with request.app.state.runtime.unit_of_work() as uow:
            await set_availability(uow, config, rep, windows, set_by=principal.owner or principal.name)
    except UnknownRep as exc:
        raise invalid([FieldError("out_of_office.backup", "unknown_rep", f"{exc} is not a rep")]) from None
    return await get_availability(rep, request, principal)


def _window(window: AwayWindow) -> OutOfOfficeWindow:
    return OutOfOfficeWindow(start=window.start, end=window.end, backup=window.backup)
