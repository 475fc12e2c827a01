"""How `lead.lifecycle` events become feedback's facts.

The consumer and `leadflow feedback rebuild` both apply events through `project`,
so replaying the topic from the beginning reproduces exactly what the consumer
built message by message. Every step is idempotent: a value, once set, stays, until a
`handoff.reopened` puts the handoff back at MQL (its decision and later stages cleared, so
the decision after the reopen is the one the return rate and the funnel count). That stays
idempotent because each message is applied once (the inbox; the rebuild keeps each id
once) and a lead's messages in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from services.feedback import store
from services.feedback.domain import left_stage_at
from services.feedback.erasure import anonymise_leads
from shared.envelope import Envelope
from shared.event_types import EventType
from shared.events import (
    ErasureRequested,
    EventData,
    HandoffCreated,
    HandoffReopened,
    HandoffTransition,
    OpportunityWon,
    SlaBreached,
)

DECISIONS = frozenset({EventType.SAL_ACCEPTED, EventType.LEAD_REJECTED, EventType.LEAD_RETURNED})
TRANSITIONS = (
    EventType.SAL_ACCEPTED,
    EventType.LEAD_REJECTED,
    EventType.LEAD_RETURNED,
    EventType.SQL_QUALIFIED,
    EventType.SQO_CREATED,
    EventType.LEAD_DISQUALIFIED,
    EventType.OPPORTUNITY_WON,
    EventType.OPPORTUNITY_LOST,
)
STAGE_REACHED: dict[str, str] = {
    EventType.SQL_QUALIFIED: "sql_at",
    EventType.SQO_CREATED: "sqo_at",
    EventType.LEAD_DISQUALIFIED: "disqualified_at",
}
PROJECTED = (
    EventType.HANDOFF_CREATED,
    *TRANSITIONS,
    EventType.HANDOFF_REOPENED,
    EventType.SLA_BREACHED,
    EventType.ERASURE_REQUESTED,
)


@dataclass
class BreachChanges:
    """Breaches recorded by a run of events, and those its transitions ended (rows)."""

    new: list[tuple[str, str, datetime]] = field(default_factory=list)  # (handoff, stage, due_at)
    ended: list[Row[Any]] = field(default_factory=list)


@dataclass
class Projected:
    """What a run of events changed that alerts care about.

    The breach changes stay in their runs' order: a reopen between two breaches of the same
    stage (one alert key) must see the first resolved before the second is raised."""

    decisions: bool = False
    breaches: list[BreachChanges] = field(default_factory=list)


async def project(conn: AsyncConnection, items: Sequence[tuple[Envelope, EventData]]) -> Projected:
    """Apply lifecycle events; events of other types are ignored.

    A reopen splits the events: those before it are applied as one run, then the reopen,
    then the rest; so a batch lands exactly as if it had been delivered in pieces there, and
    no transition before a reopen ends a breach recorded after it.
    """
    projected = Projected()
    run: list[tuple[Envelope, EventData]] = []
    for envelope, event in items:
        if isinstance(event, HandoffReopened):
            _merge(projected, await _project_run(conn, run))
            run = []
            await store.reopen_facts(conn, [event.handoff_id])
            ended = await store.end_breaches(
                conn, [(event.handoff_id, event.from_stage, envelope.occurred_at)]
            )
            # The return rate changes: the handoff is no longer sent back.
            _merge(projected, Projected(decisions=True, breaches=[BreachChanges(ended=ended)]))
        else:
            run.append((envelope, event))
    _merge(projected, await _project_run(conn, run))
    return projected


def _merge(into: Projected, more: Projected) -> None:
    into.decisions |= more.decisions
    into.breaches += more.breaches


async def _project_run(conn: AsyncConnection, items: Sequence[tuple[Envelope, EventData]]) -> Projected:
    """Apply a run of events with no reopen among them.

    A handful of statements per call, whatever the mix of events: the fact rows in order
    (one upsert), the rules, the breaches, then the breaches the transitions ended. The
    order between kinds does not matter: a breach recorded after the transition that
    ended it is closed at the moment the facts say its stage was left, which is that
    transition's time.
    """
    facts: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = []
    breaches: list[dict[str, Any]] = []
    left: list[tuple[str, str, datetime]] = []
    erased: list[str] = []
    decisions = False
    for envelope, event in items:
        if isinstance(event, HandoffCreated):
            facts.append(facts_of_handoff(envelope, event))
            rules += rules_of(event)
        elif isinstance(event, HandoffTransition) and envelope.type in TRANSITIONS:
            facts.append(facts_of_transition(envelope, event))
            left.append((event.handoff_id, event.from_stage, envelope.occurred_at))
            decisions |= envelope.type in DECISIONS
        elif isinstance(event, SlaBreached):
            breaches.append(breach_of(envelope, event))
        elif isinstance(event, ErasureRequested) and envelope.lead_id:
            erased.append(envelope.lead_id)
    await store.upsert_facts(conn, facts)
    await anonymise_leads(conn, erased)  # after the facts: a rebuild meets the erasure after them
    await store.add_rules(conn, rules)
    new_breaches = await store.add_breaches(conn, breaches)
    # A decision can reach us before the breach it beat by a hair; then the breach is over.
    left += await _already_left(conn, breaches)
    return Projected(decisions, [BreachChanges(new_breaches, await store.end_breaches(conn, left))])


def facts_of_handoff(envelope: Envelope, event: HandoffCreated) -> dict[str, Any]:
    return {
        "handoff_id": event.handoff_id,
        "lead_id": envelope.lead_id or "",
        "cycle": event.cycle,
        "owner": event.owner,
        "team": event.team,
        "policy": event.policy,
        "channel": event.channel,
        "campaign": event.campaign,
        "source": event.source,
        "grade": event.grade,
        "score": event.score,
        "handed_off_at": envelope.occurred_at,
        "mql_at": event.mql_at or envelope.occurred_at,
        "account_tier": event.account.tier if event.account is not None else None,
        "account_matched": _account_matched(event),
        "exploration": event.exploration,
        "likelihood": event.likelihood.value if event.likelihood else None,
    }


def _account_matched(event: HandoffCreated) -> bool | None:
    """Whether the lead had an account; None (unknown) for a handoff announced before handoffs
    carried accounts, whose payload has no `account` at all, so a rebuild agrees with the migration."""
    if "account" not in event.model_fields_set:
        return None
    return event.account is not None


def rules_of(event: HandoffCreated) -> list[dict[str, Any]]:
    """The rules that moved the score, summed per rule (a rule may fire for several events)."""
    points: dict[str, float] = {}
    for contribution in event.explanation:
        points[contribution.rule] = points.get(contribution.rule, 0.0) + contribution.points
    return [
        {"handoff_id": event.handoff_id, "rule": rule, "points": total}
        for rule, total in points.items()
        if total != 0
    ]


def facts_of_transition(envelope: Envelope, event: HandoffTransition) -> dict[str, Any]:
    at = envelope.occurred_at
    facts: dict[str, Any] = {
        "handoff_id": event.handoff_id,
        "lead_id": envelope.lead_id or "",
        "owner": event.owner,
        "team": event.team,
        "policy": event.policy,
        "channel": event.channel,
        "campaign": event.campaign,
    }
    kind = envelope.type
    if kind == EventType.SAL_ACCEPTED:
        return facts | {"decision": "accepted", "decided_at": at, "decided_in_time": event.in_time}
    if kind == EventType.LEAD_REJECTED:
        return facts | {
            "decision": "rejected",
            "decided_at": at,
            "decided_in_time": event.in_time,
            "sent_back": "rejected",
            "sent_back_at": at,
            "reason": event.reason,
        }
    if kind == EventType.LEAD_RETURNED:
        return facts | {"sent_back": "returned", "sent_back_at": at, "reason": event.reason}
    if isinstance(event, OpportunityWon):
        return facts | {"won_at": at, "amount": event.amount, "currency": event.currency}
    if kind == EventType.OPPORTUNITY_LOST:
        return facts | {"lost_at": at, "lost_reason": event.reason}
    return facts | {STAGE_REACHED[kind]: at}


def breach_of(envelope: Envelope, event: SlaBreached) -> dict[str, Any]:
    return {
        "handoff_id": event.handoff_id,
        "stage": event.stage,
        "policy": event.policy,
        "owner": event.owner,
        "team": event.team,
        "due_at": event.due_at,
        "breached_at": envelope.occurred_at,
    }


async def _already_left(
    conn: AsyncConnection, breaches: list[dict[str, Any]]
) -> list[tuple[str, str, datetime]]:
    left = []
    for breach in breaches:
        fact = await store.fact(conn, breach["handoff_id"])
        if fact is not None and (at := left_stage_at(fact, breach["stage"])) is not None:
            left.append((breach["handoff_id"], breach["stage"], at))
    return left


def breach_key(handoff_id: str, stage: str) -> str:
    return f"sla_breach:{handoff_id}:{stage}"
