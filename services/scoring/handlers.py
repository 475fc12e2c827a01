"""scoring's use cases: record an event and rescore the lead; follow the lifecycle.

Each handler runs inside the consumer's transaction for its batch and emits
through the outbox, so the score change and its events commit together.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from services.scoring import store
from services.scoring.domain import LeadEvent, LeadScore, meets_mql_rule, score_lead
from services.scoring.model import ScoringModel
from shared.consumer import Handler
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


def make_handlers(model: ScoringModel) -> Mapping[str, Handler]:
    async def on_lead_event(uow: UnitOfWork, envelope: Envelope, event: LeadEventAccepted) -> None:
        lead_id = await resolve_lead(uow, event)
        if await store.add_event(
            uow.conn,
            event_id=event.event_id,
            lead_id=lead_id,
            type=event.type,
            occurred_at=event.occurred_at,
            properties=event.properties,
        ):
            await rescore(uow, model, lead_id, new_traits=event.traits)

    handlers: dict[str, Handler] = {"lead.event": on_lead_event}
    for event_type in (*STAGE_AFTER, *RECYCLING):
        handlers[event_type] = follow_lifecycle
    return handlers


async def resolve_lead(uow: UnitOfWork, event: LeadEventAccepted) -> str:
    """The lead this event belongs to, creating or merging leads as identity is learned."""
    conn = uow.conn
    known = await store.lead_by_email(conn, event.email) if event.email else None
    anonymous = await store.lead_of_anonymous(conn, event.anonymous_id) if event.anonymous_id else None
    if known and anonymous and anonymous.lead_id != known.lead_id and anonymous.email is None:
        await store.merge_leads(conn, into=known.lead_id, absorbed=anonymous.lead_id)
        return str(known.lead_id)
    if known:
        if event.anonymous_id and anonymous is None:
            await store.link_anonymous(conn, anonymous_id=event.anonymous_id, lead_id=known.lead_id)
        return str(known.lead_id)
    if anonymous:
        if event.email and anonymous.email is None:
            await store.set_email(conn, lead_id=anonymous.lead_id, email=event.email)
        return str(anonymous.lead_id)
    lead_id = str(uuid.uuid4())
    await store.insert_lead(conn, lead_id=lead_id, email=event.email)
    if event.anonymous_id:
        await store.link_anonymous(conn, anonymous_id=event.anonymous_id, lead_id=lead_id)
    return lead_id


async def rescore(
    uow: UnitOfWork, model: ScoringModel, lead_id: str, *, new_traits: Mapping[str, Any]
) -> None:
    """Recompute the lead's score from its whole history; emit what changed."""
    lead = await store.lead_by_id(uow.conn, lead_id, lock=True)
    assert lead is not None
    traits = {**lead.traits, **new_traits}
    history = [
        LeadEvent(event_type=row.type, occurred_at=row.occurred_at, properties=row.properties)
        for row in await store.events_of(uow.conn, lead_id)
    ]
    at = max(e.occurred_at for e in history)
    result = score_lead(model, email=lead.email, traits=traits, events=history, at=at)
    explanation = [_contribution(c) for c in result.contributions]
    stage = lead.stage
    qualifies = stage == "nurture" and meets_mql_rule(model, result)
    if qualifies:
        stage = "mql"
    await store.update_lead(
        uow.conn,
        lead_id,
        traits=traits,
        score=result.score,
        fit_points=result.fit_points,
        grade=result.grade,
        disqualified=result.disqualified,
        explanation=[c.model_dump() for c in explanation],
        model_version=result.model_version,
        events_count=len(history),
        stage=stage,
        **({"mql_at": at} if qualifies else {}),
    )
    if (result.score, result.grade, result.disqualified) != (lead.score, lead.grade, lead.disqualified):
        await uow.emit(_scored(result, stage, explanation), lead_id=lead_id, occurred_at=at)
    if qualifies:
        await uow.emit(
            _mql_reached(
                result, explanation, cycle=lead.cycle, email=lead.email, traits=traits, history=history
            ),
            lead_id=lead_id,
            occurred_at=at,
        )


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
