"""scoring's use cases: record a batch of events and rescore their leads; follow the lifecycle.

Each handler runs inside the consumer's transaction for its batch and emits
through the outbox, so the score change and its events commit together.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from services.scoring import store
from services.scoring.domain import LeadEvent, LeadScore, meets_mql_rule, score_lead
from services.scoring.identity import IdentityPlan
from services.scoring.model import ScoringModel
from shared.consumer import BatchHandler, Handler
from shared.envelope import Envelope
from shared.events import (
    HandoffTransition,
    LeadEventAccepted,
    LeadScored,
    MqlReached,
    ScoreContribution,
)
from shared.unit_of_work import UnitOfWork

RECENT_EVENTS_CARRIED = 20

# Where the lead stands after each sales decision (for its current cycle).
STAGE_AFTER = {
    "lead.sal_accepted": "sal",
    "lead.sql_qualified": "sql",
    "lead.sqo_created": "sqo",
    "lead.disqualified": "disqualified",
}
RECYCLING = {"lead.rejected", "lead.returned"}


def make_handlers(model: ScoringModel) -> tuple[Mapping[str, Handler], Mapping[str, BatchHandler]]:
    """Per-message handlers (lifecycle) and the batch handler of lead events."""

    async def on_lead_events(uow: UnitOfWork, items: list[tuple[Envelope, LeadEventAccepted]]) -> None:
        await record_events(uow, model, items)

    handlers: dict[str, Handler] = {event_type: follow_lifecycle for event_type in (*STAGE_AFTER, *RECYCLING)}
    return handlers, {"lead.event": on_lead_events}


async def record_events(
    uow: UnitOfWork, model: ScoringModel, items: list[tuple[Envelope, LeadEventAccepted]]
) -> None:
    """Attach each event to its lead (learning identity on the way), store the new ones,
    and rescore every lead that got one: one pass over the database per batch."""
    lead_ids = await resolve_leads(uow, [event for _, event in items])
    rows = [
        {
            "event_id": event.event_id,
            "lead_id": lead_id,
            "type": event.type,
            "occurred_at": event.occurred_at,
            "properties": event.properties,
        }
        for (_, event), lead_id in zip(items, lead_ids, strict=True)
    ]
    new_ids = await store.add_events(uow.conn, list({row["event_id"]: row for row in rows}.values()))
    touched: dict[str, list[tuple[Envelope, LeadEventAccepted]]] = {}
    for (envelope, event), lead_id in zip(items, lead_ids, strict=True):
        if event.event_id in new_ids:
            touched.setdefault(lead_id, []).append((envelope, event))
    if touched:
        await rescore(uow, model, touched)


async def resolve_leads(uow: UnitOfWork, events: list[LeadEventAccepted]) -> list[str]:
    """The lead of each event, creating, linking and merging leads as identity is learned."""
    emails = {e.email for e in events if e.email}
    anonymous = {e.anonymous_id for e in events if e.anonymous_id}
    lead_of_email, lead_of_anonymous, email_of_lead = await store.identities(
        uow.conn, emails=emails, anonymous=anonymous
    )
    plan = IdentityPlan(
        lead_of_email, lead_of_anonymous, email_of_lead, new_lead_id=lambda: str(uuid.uuid4())
    )
    resolved = [plan.resolve(e.email, e.anonymous_id) for e in events]
    await store.apply_identity_changes(
        uow.conn,
        create=plan.leads_to_create,
        emails_learned=plan.emails_learned,
        merges=plan.merges_of_stored_leads,
        links=plan.links_to_write,
    )
    return [plan.final(lead_id) for lead_id in resolved]


async def rescore(
    uow: UnitOfWork, model: ScoringModel, touched: dict[str, list[tuple[Envelope, LeadEventAccepted]]]
) -> None:
    """Recompute each touched lead's score from its whole history; emit what changed."""
    lead_ids = sorted(touched)
    leads = await store.leads_by_ids(uow.conn, lead_ids)
    histories = await store.histories(uow.conn, lead_ids)
    changes = []
    for lead_id in lead_ids:
        lead, items = leads[lead_id], touched[lead_id]
        traits = dict(lead.traits)
        for _, event in items:
            traits.update(event.traits)
        history = [LeadEvent(row.type, row.occurred_at, row.properties) for row in histories[lead_id]]
        change = score_change(uow, model, lead, traits, history, trace_id=items[-1][0].trace_id)
        changes.append(change)
    await store.update_leads(uow.conn, changes)


def score_change(
    uow: UnitOfWork,
    model: ScoringModel,
    lead: Any,
    traits: dict[str, Any],
    history: list[LeadEvent],
    *,
    trace_id: str,
) -> dict[str, Any]:
    """Score one lead, emit `lead.scored` / `lead.mql_reached` as due, and return its new columns."""
    at = max(e.occurred_at for e in history)
    result = score_lead(model, email=lead.email, traits=traits, events=history, at=at)
    explanation = [_contribution(c) for c in result.contributions]
    qualifies = lead.stage == "nurture" and meets_mql_rule(model, result)
    stage = "mql" if qualifies else lead.stage
    if (result.score, result.grade, result.disqualified) != (lead.score, lead.grade, lead.disqualified):
        uow.emit(_scored(result, stage, explanation), lead_id=lead.lead_id, occurred_at=at, trace_id=trace_id)
    if qualifies:
        mql = _mql_reached(
            result, explanation, cycle=lead.cycle, email=lead.email, traits=traits, history=history
        )
        uow.emit(mql, lead_id=lead.lead_id, occurred_at=at, trace_id=trace_id)
    return {
        "lead_id": lead.lead_id,
        "traits": traits,
        "score": result.score,
        "fit_points": result.fit_points,
        "grade": result.grade,
        "disqualified": result.disqualified,
        "explanation": [c.model_dump() for c in explanation],
        "model_version": result.model_version,
        "events_count": len(history),
        "stage": stage,
        "mql_at": at if qualifies else lead.mql_at,
    }


async def follow_lifecycle(uow: UnitOfWork, envelope: Envelope, event: HandoffTransition) -> None:
    """Track the lead's stage from sales decisions; a rejection or return recycles it to nurture."""
    if envelope.lead_id is None:
        return
    lead = await store.lead_by_id(uow.conn, envelope.lead_id, lock=True)
    if lead is None or lead.cycle != event.cycle:
        return  # a decision about an earlier cycle changes nothing now
    if envelope.type in RECYCLING:
        await store.update_lead(uow.conn, lead.lead_id, stage="nurture", cycle=lead.cycle + 1, mql_at=None)
    else:
        await store.update_lead(uow.conn, lead.lead_id, stage=STAGE_AFTER[envelope.type])


def _contribution(c: Any) -> ScoreContribution:
    return ScoreContribution(rule=c.rule, kind=c.kind, points=c.points, detail=c.detail)


def _scored(result: LeadScore, stage: str, explanation: list[ScoreContribution]) -> LeadScored:
    return LeadScored(
        score=result.score,
        fit_points=result.fit_points,
        grade=result.grade,
        stage=stage,
        model_version=result.model_version,
        disqualified=result.disqualified,
        explanation=explanation,
    )


def _mql_reached(
    result: LeadScore,
    explanation: list[ScoreContribution],
    *,
    cycle: int,
    email: str | None,
    traits: Mapping[str, Any],
    history: list[LeadEvent],
) -> MqlReached:
    latest = sorted(history, key=lambda e: e.occurred_at)[-RECENT_EVENTS_CARRIED:]
    return MqlReached(
        cycle=cycle,
        score=result.score,
        grade=result.grade,
        model_version=result.model_version,
        explanation=explanation,
        email=email,
        traits=dict(traits),
        recent_events=[(e.event_type, e.occurred_at) for e in latest],
        channel=_first_property(history, "channel", "utm_medium") or traits.get("channel"),
        campaign=_first_property(history, "campaign", "utm_campaign"),
    )


def _first_property(history: list[LeadEvent], *names: str) -> str | None:
    for event in sorted(history, key=lambda e: e.occurred_at):
        for name in names:
            value = event.properties.get(name)
            if value:
                return str(value)
    return None
