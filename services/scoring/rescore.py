"""Rescoring every lead under the model in force (after a model change).

Scores, grades and explanations are brought up to date silently; events go out
only for leads whose MQL status changes: a lead in nurture that now qualifies
becomes an MQL (`lead.scored` + `lead.mql_reached`), and an MQL not yet
decided that no longer qualifies is announced with `lead.scored` (its handoff
stays with sales, who decide on it).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from services.scoring import lifecycle, store
from services.scoring.domain import LeadEvent
from services.scoring.handlers import announce
from services.scoring.model import ScoringModel
from services.scoring.score_state import LeadState
from services.scoring.state_scoring import save_states, state_scorer
from shared.unit_of_work import UnitOfWork

UnitOfWorkFactory = Callable[[], AbstractAsyncContextManager[UnitOfWork]]


@dataclass
class RescoreSummary:
    model_version: str
    leads: int = 0
    changed: int = 0
    became_mql: int = 0
    stopped_qualifying: int = 0


async def rescore_all(
    unit_of_work: UnitOfWorkFactory, model: ScoringModel, *, page: int = 500
) -> RescoreSummary:
    """Rescore leads a page at a time, each page in its own transaction."""
    summary = RescoreSummary(model.version)
    after: str | None = None
    while True:
        async with unit_of_work() as uow:
            lead_ids = await store.lead_ids_page(uow.conn, after=after, limit=page)
            if not lead_ids:
                return summary
            await rescore_page(uow, model, lead_ids, summary)
        after = lead_ids[-1]


async def rescore_page(
    uow: UnitOfWork, model: ScoringModel, lead_ids: list[str], summary: RescoreSummary
) -> None:
    leads = await store.leads_by_ids(uow.conn, lead_ids)
    histories = await store.histories(uow.conn, lead_ids)
    scorer = state_scorer(model)
    evaluated, states = [], {}
    for lead_id in lead_ids:
        lead, rows = leads.get(lead_id), histories[lead_id]
        if lead is None or not rows:
            continue
        history = [LeadEvent(r.type, r.occurred_at, r.properties) for r in rows]
        rescored = lifecycle.rescore(model, lead, dict(lead.traits), history)
        states[lead_id] = scorer.fold(LeadState(), history)  # the running state, rebuilt with it
        summary.leads += 1
        summary.changed += rescored.score_changed or rescored.lead.model_version != model.version
        if rescored.qualifies:
            summary.became_mql += 1
            announce(uow, rescored, trace_id=None)
        elif lifecycle.stopped_qualifying(model, rescored):
            summary.stopped_qualifying += 1
            announce(uow, rescored, trace_id=None)
        evaluated.append(rescored)
    await store.save_rescored(uow.conn, evaluated, cause="rescore")
    await save_states(uow, scorer, evaluated, states)
