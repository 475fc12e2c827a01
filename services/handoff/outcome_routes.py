"""The routes that close and reopen a handoff: an opportunity's outcome as the CRM reports it
(`POST /v1/handoffs/{id}/outcome`), and a manager's reopen (`POST /v1/handoffs/{id}/reopen`).

Kept beside app.py's decision routes, answering the same way (the handoff as it is now, its
ETag, Idempotency-Key replays, problem+json).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from services.handoff.app import (
    ERRORS,
    IdempotencyKey,
    IfMatch,
    Manager,
    Writer,
    _act,
    _config,
    _expected_version,
    _viewer,
)
from services.handoff.domain import Action, Decision, Superseded
from services.handoff.handlers import decide
from services.handoff.reopening import reopen
from services.handoff.schemas import HandoffPublic, OutcomeBody, ReopenBody
from services.handoff.visibility import visible_owners
from shared.problems import Problem
from shared.unit_of_work import UnitOfWork

router = APIRouter(prefix="/v1", tags=["handoffs"])
OUTCOME_ACTIONS = {"won": Action.WIN, "lost": Action.LOSE}


@router.post("/handoffs/{handoff_id}/outcome", response_model=HandoffPublic, responses=ERRORS)
async def record_outcome(
    handoff_id: str,
    body: OutcomeBody,
    request: Request,
    principal: Writer,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Close an opportunity won (with its amount and currency) or lost (with a reason) (SQO → won | lost)."""
    config = _config(request)
    details: dict[str, Any] = {}
    if body.amount is not None:
        details["amount"] = body.amount
    if body.currency is not None:
        details["currency"] = body.currency
    actor = principal.owner or principal.name
    decision = Decision(OUTCOME_ACTIONS[body.outcome], actor, body.reason, body.note, details)
    expected = _expected_version(if_match)

    async def work(uow: UnitOfWork) -> Any:
        owners = visible_owners(_viewer(principal), config)
        return await decide(uow, config, handoff_id, decision, expected_version=expected, owners=owners)

    return await _act(request, principal, idempotency_key, work)


@router.post("/handoffs/{handoff_id}/reopen", response_model=HandoffPublic, responses=ERRORS)
async def reopen_handoff(
    handoff_id: str,
    request: Request,
    principal: Manager,
    body: ReopenBody | None = None,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Undo a return or disqualification, with a reason (managers): an MQL again, with a new deadline."""
    body = body or ReopenBody()
    decision = Decision(Action.REOPEN, principal.owner or principal.name, body.reason, body.note)
    expected = _expected_version(if_match)

    async def work(uow: UnitOfWork) -> Any:
        return await reopen(uow, _config(request), handoff_id, decision, expected_version=expected)

    try:
        return await _act(request, principal, idempotency_key, work)
    except Superseded as exc:
        raise Problem(
            status=409,
            title="The lead has a newer handoff",
            detail=str(exc),
            type="https://leadflow.dev/problems/superseded",
        ) from None
