"""Stored scores true as time passes: the loop that re-scores leads when their decaying score
matters (see decay_moments), and its use case."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

from services.scoring import decay_moments, score_state_store, store
from services.scoring.domain import LeadEvent
from services.scoring.handlers import announce
from services.scoring.model import ScoringModel
from services.scoring.score_state import LeadState
from services.scoring.score_state_store import Features
from services.scoring.state_scoring import save_states, score_states, state_scorer
from shared.envelope import utcnow
from shared.runtime import BackgroundLoop, ServiceRuntime
from shared.unit_of_work import UnitOfWork

PAGE = 200  # leads re-scored per transaction


def make_decay_loop(model: ScoringModel, *, poll_s: float) -> BackgroundLoop:
    async def decayed_scores(runtime: ServiceRuntime, stop: asyncio.Event) -> None:
        while not stop.is_set():
            async with runtime.unit_of_work() as uow:
                looked_at = await look_at_decayed(uow, model, now=utcnow(), limit=PAGE)
            if looked_at < PAGE:  # a full page: more may be due, go on at once
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=poll_s)

    return decayed_scores


async def look_at_decayed(uow: UnitOfWork, model: ScoringModel, *, now: datetime, limit: int = 200) -> int:
    """Re-score the leads whose decaying score is due a look (decay_moments), as of `now`:
    saved, recorded in the score history (cause `decay`), announced with `lead.scored`, and
    the next look planned. A nurture lead may qualify (a penalty faded) or stop being close; a
    lead already with sales stays where it is. Leads another instance holds are left to it."""
    scorer = state_scorer(model)
    lead_ids = await score_state_store.claim_due(uow.conn, now=now, limit=limit)
    if not lead_ids:
        return 0
    leads = await store.leads_by_ids(uow.conn, lead_ids)
    states = await score_state_store.states(uow.conn, lead_ids, model_key=scorer.key)
    stale = [lead_id for lead_id in lead_ids if lead_id not in states]  # folded under other rules
    for lead_id, rows in (await store.histories(uow.conn, stale)).items():
        states[lead_id] = scorer.fold(
            LeadState(), [LeadEvent(r.type, r.occurred_at, r.properties) for r in rows]
        )
    scored = {
        lead_id: (dict(leads[lead_id].traits), states[lead_id])
        for lead_id in lead_ids
        if states[lead_id].events
    }
    evaluated = await score_states(uow, scorer, leads, scored, at=now)
    for rescored in evaluated:
        announce(uow, rescored, trace_id=None)
    await store.save_rescored(uow.conn, evaluated, cause="decay")
    # A quiet lead: its next look exactly (the event path stored an early one, `early_look`).
    await save_states(uow, scorer, evaluated, states, Features.UNCHANGED, plan=decay_moments.next_look)
    return len(lead_ids)
