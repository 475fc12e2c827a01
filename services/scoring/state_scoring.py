"""Scoring leads from their running states (`score_state`): the steps the event handler, the
decay loop, rescoring and the lead API share. A state scores its lead exactly or says it cannot;
then the lead is scored from its whole history (`domain.score_lead`), so every answer is the
full recompute's."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.scoring import decay_moments, lifecycle, score_state_store, store
from services.scoring.domain import LeadEvent, LeadScore, score_lead
from services.scoring.feature_state import FeatureState, FeatureStateFolder
from services.scoring.lifecycle import Activity, FirstTouch, Rescored
from services.scoring.model import ScoringModel
from services.scoring.score_state import LeadState, LeadStateScorer
from services.scoring.score_state_store import Features, SavedState
from shared.unit_of_work import UnitOfWork


async def score_states(
    uow: UnitOfWork,
    scorer: LeadStateScorer,
    leads: Mapping[str, Any],
    scored: Mapping[str, tuple[dict[str, Any], LeadState]],
    *,
    at: datetime | None = None,
) -> list[Rescored]:
    """Each lead scored from its state as of `at` (None: its latest event), the MQL decided;
    the few the state cannot score exactly are scored from their whole history (score_lead)."""
    results: dict[str, LeadScore] = {}
    unsure: list[str] = []
    for lead_id, (traits, state) in scored.items():
        when = at or state.latest_at
        assert when is not None  # a scored lead has events
        found = scorer.score(state, email=leads[lead_id].email, traits=traits, at=when)
        if found is None:
            unsure.append(lead_id)
        else:
            results[lead_id] = found
    if unsure:
        histories = await store.histories(uow.conn, unsure)
        for lead_id in unsure:
            traits, state = scored[lead_id]
            history = [LeadEvent(row.type, row.occurred_at, row.properties) for row in histories[lead_id]]
            when = at or state.latest_at
            assert when is not None
            results[lead_id] = score_lead(
                scorer.model, email=leads[lead_id].email, traits=traits, events=history, at=when
            )
    evaluated = []
    for lead_id, (traits, state) in scored.items():
        when = at or state.latest_at
        assert when is not None
        activity = state_activity(state, traits)
        evaluated.append(
            lifecycle.decide(scorer.model, leads[lead_id], traits, results[lead_id], activity, at=when)
        )
    return evaluated


def state_activity(state: LeadState, traits: Mapping[str, Any]) -> Activity:
    channel, campaign, source = state.first_touch_values()
    touch = FirstTouch(channel=channel or traits.get("channel"), campaign=campaign, source=source)
    return Activity(state.events, touch, state.recent_events())


async def save_states(
    uow: UnitOfWork,
    scorer: LeadStateScorer,
    evaluated: list[Rescored],
    states: Mapping[str, LeadState],
    features: tuple[FeatureStateFolder, Mapping[str, FeatureState]] | Features,
    *,
    plan: Callable[..., datetime | None] = decay_moments.early_look,
) -> None:
    """Store each lead's state with the next moment its decaying score needs a look, and its
    feature state: the ones given (folded with the same events), or, without, the stored
    ones left (no events folded) or dropped (events folded into the score states only).

    The moment is `plan`'s: by default `early_look`, cheap whatever the history, which the
    decay loop replaces with the exact `next_look` once it comes with nothing meaningful yet.

    A lead rescored without new events (a member its account's new MQA qualified) has no new
    state: its stored one is still true."""
    saved = [
        SavedState(
            r.lead.lead_id,
            states[r.lead.lead_id],
            plan(scorer, states[r.lead.lead_id], r.result, at=r.at),
            features[1][r.lead.lead_id] if isinstance(features, tuple) else None,
        )
        for r in evaluated
        if r.lead.lead_id in states
    ]
    written = features[0].key if isinstance(features, tuple) else features
    await score_state_store.save_states(uow.conn, saved, model_key=scorer.key, features=written)


_SCORERS: dict[int, tuple[ScoringModel, LeadStateScorer]] = {}


def state_scorer(model: ScoringModel) -> LeadStateScorer:
    """The model's state scorer, prepared once per model (the entry holds the model, so its id
    is not reused while cached)."""
    entry = _SCORERS.get(id(model))
    if entry is None or entry[0] is not model:
        entry = _SCORERS[id(model)] = (model, LeadStateScorer(model))
    return entry[1]


_FOLDERS: dict[int, tuple[ScoringModel, FeatureStateFolder]] = {}


def feature_folder(model: ScoringModel) -> FeatureStateFolder:
    """The model's feature state folder, prepared once per model (as `state_scorer`)."""
    entry = _FOLDERS.get(id(model))
    if entry is None or entry[0] is not model:
        entry = _FOLDERS[id(model)] = (model, FeatureStateFolder(model))
    return entry[1]


async def score_as_of(
    conn: AsyncConnection, model: ScoringModel, lead: Any, *, at: datetime
) -> LeadScore | None:
    """The lead's score as of `at` (what GET answers: decay continues after the last event),
    from its state, else from its history; None when it has no events."""
    scorer = state_scorer(model)
    state = (await score_state_store.states(conn, [lead.lead_id], model_key=scorer.key)).get(lead.lead_id)
    if state is not None and state.events:
        found = scorer.score(state, email=lead.email, traits=lead.traits, at=at)
        if found is not None:
            return found
    rows = (await store.histories(conn, [lead.lead_id]))[lead.lead_id]
    if not rows:
        return None
    history = [LeadEvent(r.type, r.occurred_at, r.properties) for r in rows]
    return score_lead(model, email=lead.email, traits=lead.traits, events=history, at=at)
