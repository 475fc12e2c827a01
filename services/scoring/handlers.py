"""scoring's use cases: record a batch of events and rescore their leads; follow the lifecycle.

Each handler runs inside the consumer's transaction for its batch and emits
through the outbox, so the score change and its events commit together.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.scoring import store
from services.scoring.domain import LeadEvent, LeadScore, may_requalify, meets_mql_rule, score_lead
from services.scoring.identity import IdentityPlan
from services.scoring.metrics import MQLS
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
    evaluated = []
    for lead_id in lead_ids:
        lead, items = leads[lead_id], touched[lead_id]
        traits = dict(lead.traits)
        for _, event in items:
            traits.update(event.traits)
        history = [LeadEvent(row.type, row.occurred_at, row.properties) for row in histories[lead_id]]
        rescored = evaluate(model, lead, traits, history)
        announce(uow, rescored, trace_id=items[-1][0].trace_id)
        evaluated.append(rescored)
    await save(uow, evaluated, cause="event")


@dataclass(frozen=True)
class Rescored:
    """A lead's new score, and whether it becomes an MQL with it."""

    lead: Any
    traits: dict[str, Any]
    history: list[LeadEvent]
    at: datetime
    result: LeadScore
    explanation: list[ScoreContribution]
    qualifies: bool

    @property
    def stage(self) -> str:
        return "mql" if self.qualifies else str(self.lead.stage)

    @property
    def score_changed(self) -> bool:
        r, lead = self.result, self.lead
        return (r.score, r.grade, r.disqualified) != (lead.score, lead.grade, lead.disqualified)

    def columns(self) -> dict[str, Any]:
        return {
            "lead_id": self.lead.lead_id,
            "traits": self.traits,
            "score": self.result.score,
            "fit_points": self.result.fit_points,
            "grade": self.result.grade,
            "disqualified": self.result.disqualified,
            "explanation": [c.model_dump() for c in self.explanation],
            "model_version": self.result.model_version,
            "events_count": len(self.history),
            "stage": self.stage,
            "mql_at": self.at if self.qualifies else self.lead.mql_at,
        }

    def history_row(self, cause: str) -> dict[str, Any] | None:
        """A row of the score history, when score, grade, stage or model changed."""
        lead, r = self.lead, self.result
        if (lead.score, lead.grade, lead.stage, lead.model_version) == (
            r.score,
            r.grade,
            self.stage,
            r.model_version,
        ):
            return None
        return {
            "lead_id": lead.lead_id,
            "occurred_at": self.at,
            "score": r.score,
            "fit_points": r.fit_points,
            "grade": r.grade,
            "stage": self.stage,
            "model_version": r.model_version,
            "cause": cause,
        }


def evaluate(model: ScoringModel, lead: Any, traits: dict[str, Any], history: list[LeadEvent]) -> Rescored:
    """Score a lead from its whole history; it qualifies when in nurture, past any cool-off."""
    at = max(e.occurred_at for e in history)
    result = score_lead(model, email=lead.email, traits=traits, events=history, at=at)
    qualifies = (
        lead.stage == "nurture"
        and meets_mql_rule(model, result)
        and may_requalify(model, recycled_at=lead.recycled_at, at=at)
    )
    explanation = [_contribution(c) for c in result.contributions]
    return Rescored(lead, traits, history, at, result, explanation, qualifies)


def announce(uow: UnitOfWork, rescored: Rescored, *, trace_id: str | None, scored: bool = True) -> None:
    """Emit `lead.scored` (if asked and the score changed) and `lead.mql_reached` (if it qualified)."""
    r, lead_id = rescored, rescored.lead.lead_id
    if scored and r.score_changed:
        uow.emit(
            _scored(r.result, r.stage, r.explanation), lead_id=lead_id, occurred_at=r.at, trace_id=trace_id
        )
    if r.qualifies:
        mql = _mql_reached(
            r.result,
            r.explanation,
            cycle=r.lead.cycle,
            email=r.lead.email,
            traits=r.traits,
            history=r.history,
        )
        uow.emit(mql, lead_id=lead_id, occurred_at=r.at, trace_id=trace_id)
        uow.once_before_commit("metrics:mqls", count_mqls)


async def count_mqls(uow: UnitOfWork) -> None:
    """Count the MQLs the transaction commits (`leadflow_mqls_total`).

    Run as it commits, so an MQL of a message rolled back to its savepoint is not
    counted; a commit that then fails (an outage: the batch is retried) counts its
    MQLs again.
    """
    for emitted in uow.emitted:
        if emitted.envelope.type == MqlReached.event_type:
            MQLS.labels(emitted.envelope.data["grade"]).inc()


async def save(uow: UnitOfWork, evaluated: list[Rescored], *, cause: str) -> None:
    await store.update_leads(uow.conn, [r.columns() for r in evaluated])
    await store.record_score_changes(uow.conn, [row for r in evaluated if (row := r.history_row(cause))])


async def follow_lifecycle(uow: UnitOfWork, envelope: Envelope, event: HandoffTransition) -> None:
    """Track the lead's stage from sales decisions; a rejection or return recycles it to nurture."""
    if envelope.lead_id is None:
        return
    lead = await store.lead_by_id(uow.conn, envelope.lead_id, lock=True)
    if lead is None or lead.cycle != event.cycle:
        return  # a decision about an earlier cycle changes nothing now
    if envelope.type in RECYCLING:
        await store.record_outcome(
            uow.conn, lead_id=lead.lead_id, cycle=lead.cycle, outcome="sent_back", at=envelope.occurred_at
        )
        await store.update_lead(
            uow.conn,
            lead.lead_id,
            stage="nurture",
            cycle=lead.cycle + 1,
            mql_at=None,
            recycled_at=envelope.occurred_at,
        )
        return
    if envelope.type == "lead.sal_accepted":
        await store.record_outcome(
            uow.conn, lead_id=lead.lead_id, cycle=lead.cycle, outcome="accepted", at=envelope.occurred_at
        )
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
        source=_first_property(history, "source", "utm_source"),
    )


def _first_property(history: list[LeadEvent], *names: str) -> str | None:
    for event in sorted(history, key=lambda e: e.occurred_at):
        for name in names:
            value = event.properties.get(name)
            if value:
                return str(value)
    return None
