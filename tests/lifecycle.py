"""Handoff lifecycle envelopes for feedback's tests: the events handoff would publish."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from shared.envelope import Envelope, utcnow
from shared.events import (
    EVENT_MODELS,
    AccountContext,
    HandoffCreated,
    HandoffTransition,
    ScoreContribution,
    SlaBreached,
    envelope_for,
)

TARGETS = {
    "lead.sal_accepted": ("mql", "sal"),
    "lead.rejected": ("mql", "returned"),
    "lead.returned": ("sal", "returned"),
    "lead.sql_qualified": ("sal", "sql"),
    "lead.sqo_created": ("sql", "sqo"),
    "lead.disqualified": ("mql", "disqualified"),
    "lead.opportunity_won": ("sqo", "won"),
    "lead.opportunity_lost": ("sqo", "lost"),
    "handoff.reopened": ("returned", "mql"),
}
WON_DEAL = {"amount": "25000.00", "currency": "EUR"}


def created(
    n: int,
    *,
    at: datetime | None = None,
    owner: str = "ana",
    team: str | None = "emea",
    policy: str = "standard",
    source: str | None = "webinar",
    channel: str | None = "organic",
    campaign: str | None = None,
    score: int = 70,
    grade: str = "A",
    rules: dict[str, float] | None = None,
    account: AccountContext | None = None,
) -> Envelope:
    at = at or utcnow()
    explanation = [
        ScoreContribution(rule=rule, kind=rule.split(".")[0], points=points, detail=rule)
        for rule, points in (rules or {"fit.title": 20.0, "engagement.demo_request": 40.0}).items()
    ]
    return envelope_for(
        HandoffCreated(
            handoff_id=f"h{n}",
            cycle=1,
            owner=owner,
            team=team,
            policy=policy,
            decide_by=at + timedelta(hours=2),
            channel=channel,
            campaign=campaign,
            source=source,
            score=score,
            grade=grade,
            mql_at=at,
            explanation=explanation,
            account=account,
        ),
        source="handoff",
        lead_id=f"lead-{n}",
        occurred_at=at,
    )


def moved(
    n: int,
    event_type: str,
    *,
    at: datetime | None = None,
    reason: str | None = None,
    in_time: bool = True,
    owner: str = "ana",
    team: str | None = "emea",
    policy: str = "standard",
    from_stage: str | None = None,
) -> Envelope:
    model: Any = EVENT_MODELS[event_type]
    assert issubclass(model, HandoffTransition)
    source_stage, target = TARGETS[event_type]
    if reason is None and event_type in {"lead.rejected", "lead.returned", "lead.disqualified"}:
        reason = "not_a_fit"
    if reason is None and event_type == "lead.opportunity_lost":
        reason = "no budget"
    if reason is None and event_type == "handoff.reopened":
        reason = "returned by mistake"
    deal: dict[str, Any] = WON_DEAL if event_type == "lead.opportunity_won" else {}
    if event_type == "handoff.reopened":
        deal = {"decide_by": (at or utcnow()) + timedelta(days=2)}
    return envelope_for(
        model(
            handoff_id=f"h{n}",
            cycle=1,
            from_stage=from_stage or source_stage,
            to_stage=target,
            actor="rep",
            owner=owner,
            team=team,
            policy=policy,
            in_time=in_time,
            reason=reason,
            **deal,
        ),
        source="handoff",
        lead_id=f"lead-{n}",
        occurred_at=at or utcnow(),
    )


def breached(
    n: int, *, at: datetime | None = None, stage: str = "mql", owner: str = "ana", team: str | None = "emea"
) -> Envelope:
    at = at or utcnow()
    return envelope_for(
        SlaBreached(handoff_id=f"h{n}", policy="standard", stage=stage, owner=owner, team=team, due_at=at),
        source="handoff",
        lead_id=f"lead-{n}",
        occurred_at=at,
    )


def account(tier: str | None = "strategic", *, account_id: str = "acc-1") -> AccountContext:
    """A matched account as scoring puts it on `lead.mql_reached` and handoff copies it."""
    return AccountContext(
        account_id=account_id,
        name="Acme",
        owner="sophie.laurent",
        tier=tier,
        matched_by="domain",
        confidence=1.0,
    )
