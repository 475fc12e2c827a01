"""Rescoring every lead under the model in force (after a model change).

Scores, grades and explanations are brought up to date silently; events go out
only for leads whose MQL status changes: a lead in nurture that now qualifies
becomes an MQL (`lead.scored` + `lead.mql_reached`), and an MQL not yet
decided that no longer qualifies is announced with `lead.scored` (its handoff
stays with sales, who decide on it).

With accounts in the model, each page also brings its leads' account shares up to
date, and once every lead is rescored each account is rebuilt from its members and
scored under the model, a page at a time: only MQA status changes are announced
(`account.scored`, `account.mqa_reached`), and a lead in nurture at an MQA account
that meets the lower threshold becomes an MQL.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from services.scoring import lifecycle, store
from services.scoring.accounts import store as account_store
from services.scoring.accounts.handlers import recompute_accounts, refresh_members
from services.scoring.domain import LeadEvent
from services.scoring.handlers import announce
from services.scoring.model import ScoringModel
from services.scoring.score_state import LeadState
from services.scoring.state_scoring import feature_folder, save_states, state_scorer
from shared.unit_of_work import UnitOfWork

UnitOfWorkFactory = Callable[[], AbstractAsyncContextManager[UnitOfWork]]


@dataclass
class RescoreSummary:
    model_version: str
    leads: int = 0
    changed: int = 0
    became_mql: int = 0
    stopped_qualifying: int = 0
    accounts: int = 0
    accounts_changed: int = 0  # score, grade or MQA moved
    became_mqa: int = 0
    stopped_mqa: int = 0


async def rescore_all(
    unit_of_work: UnitOfWorkFactory, model: ScoringModel, *, page: int = 500
) -> RescoreSummary:
    """Rescore leads a page at a time, each page in its own transaction; then the accounts."""
    summary = RescoreSummary(model.version)
    after: str | None = None
    while True:
        async with unit_of_work() as uow:
            lead_ids = await store.lead_ids_page(uow.conn, after=after, limit=page)
            if not lead_ids:
                break
            await rescore_page(uow, model, lead_ids, summary)
        after = lead_ids[-1]
    if model.account is not None:
        await rescore_accounts(unit_of_work, model, summary, page=page)
    return summary


async def rescore_accounts(
    unit_of_work: UnitOfWorkFactory, model: ScoringModel, summary: RescoreSummary, *, page: int
) -> None:
    """Every account rebuilt from its members' shares and scored under the model, a page at a
    time (each page's accounts locked, so a consumer's roll-up of them waits its turn)."""
    after: str | None = None
    while True:
        async with unit_of_work() as uow:
            account_ids = await account_store.account_ids_page(uow.conn, after=after, limit=page)
            if not account_ids:
                return
            done = await recompute_accounts(uow, model, account_ids)
            for rescored in done.qualified:
                announce(uow, rescored, trace_id=None)
            await store.save_rescored(uow.conn, done.qualified, cause="rescore")
        summary.accounts += done.accounts
        summary.accounts_changed += done.changed
        summary.became_mqa += done.became_mqa
        summary.stopped_mqa += done.stopped_mqa
        summary.became_mql += len(done.qualified)
        after = account_ids[-1]


async def rescore_page(
    uow: UnitOfWork, model: ScoringModel, lead_ids: list[str], summary: RescoreSummary
) -> None:
    leads = await store.leads_by_ids(uow.conn, lead_ids)
    histories = await store.histories(uow.conn, lead_ids)
    scorer, folder = state_scorer(model), feature_folder(model)
    evaluated, states, features = [], {}, {}
    for lead_id in lead_ids:
        lead, rows = leads.get(lead_id), histories[lead_id]
        if lead is None or not rows:
            continue
        history = [LeadEvent(r.type, r.occurred_at, r.properties) for r in rows]
        rescored = lifecycle.rescore(model, lead, dict(lead.traits), history)
        states[lead_id] = scorer.fold(LeadState(), history)  # the running states, rebuilt with it
        features[lead_id] = folder.build(history)  # (under the model's rules: they may be new)
        summary.leads += 1
        summary.changed += rescored.score_changed or rescored.lead.model_version != model.version
        if rescored.qualifies:
            summary.became_mql += 1
            announce(uow, rescored, trace_id=None)
        elif lifecycle.stopped_qualifying(model, rescored):
            summary.stopped_qualifying += 1
            announce(uow, rescored, trace_id=None)
        evaluated.append(rescored)
    await refresh_members(uow, model, evaluated)
    await store.save_rescored(uow.conn, evaluated, cause="rescore")
    await save_states(uow, scorer, evaluated, states, (folder, features))
