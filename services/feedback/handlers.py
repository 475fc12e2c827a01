"""feedback's use cases: keep one fact row per handoff; raise and resolve alerts.

The return-rate alert is evaluated after every event that changes a decision
and on a timer (so decisions ageing out of the window resolve it too). Its
state lives in the `alerts` table, so raising and resolving each happen once
per crossing, across restarts and instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.feedback import store
from services.feedback.domain import FeedbackConfig, RateFigure, decide_alert, rate_figure
from shared.consumer import BatchHandler, Handler
from shared.envelope import Envelope, utcnow
from shared.events import AlertRaised, AlertResolved, HandoffCreated, HandoffTransition
from shared.runtime import BackgroundLoop, ServiceRuntime
from shared.unit_of_work import UnitOfWork

RETURN_RATE_OVERALL = "return_rate:overall"


def make_handlers(config: FeedbackConfig) -> tuple[Mapping[str, Handler], Mapping[str, BatchHandler]]:
    """Handoffs one by one; decisions in runs, with the alert evaluated once per run, not per message."""

    async def on_created(uow: UnitOfWork, envelope: Envelope, event: HandoffCreated) -> None:
        await store.upsert_fact(
            uow.conn,
            event.handoff_id,
            envelope.lead_id or "",
            cycle=event.cycle,
            owner=event.owner,
            policy=event.policy,
            channel=event.channel,
            campaign=event.campaign,
            grade=event.grade,
            score=event.score,
            handed_off_at=envelope.occurred_at,
        )

    async def on_transitions(uow: UnitOfWork, items: list[tuple[Envelope, HandoffTransition]]) -> None:
        for envelope, event in items:
            facts = facts_of_transition(envelope.type, event, at=envelope.occurred_at)
            await store.upsert_fact(uow.conn, event.handoff_id, envelope.lead_id or "", **facts)
        if any(envelope.type in DECISIONS for envelope, _ in items):
            await evaluate_return_rate(uow, config, now=utcnow())

    return {"handoff.created": on_created}, {event_type: on_transitions for event_type in TRANSITION_FACTS}


DECISIONS = {"lead.sal_accepted", "lead.rejected", "lead.returned"}
TRANSITION_FACTS = (
    "lead.sal_accepted",
    "lead.rejected",
    "lead.returned",
    "lead.sql_qualified",
    "lead.sqo_created",
    "lead.disqualified",
)


def facts_of_transition(event_type: str, event: HandoffTransition, *, at: datetime) -> dict[str, Any]:
    common = {
        "owner": event.owner,
        "policy": event.policy,
        "channel": event.channel,
        "campaign": event.campaign,
    }
    if event_type == "lead.sal_accepted":
        return {**common, "decision": "accepted", "decided_at": at, "decided_in_time": event.in_time}
    if event_type == "lead.rejected":
        return {
            **common,
            "decision": "rejected",
            "decided_at": at,
            "decided_in_time": event.in_time,
            "sent_back": "rejected",
            "sent_back_at": at,
            "reason": event.reason,
        }
    if event_type == "lead.returned":
        return {**common, "sent_back": "returned", "sent_back_at": at, "reason": event.reason}
    column = {
        "lead.sql_qualified": "sql_at",
        "lead.sqo_created": "sqo_at",
        "lead.disqualified": "disqualified_at",
    }
    return {**common, column[event_type]: at}


async def return_rate(conn: AsyncConnection, *, now: datetime, window: timedelta) -> RateFigure:
    """Sent back ÷ decided, among handoffs first decided in the window ending `now`."""
    sent_back, decided = await store.decision_counts(conn, since=now - window)
    return rate_figure(sent_back, decided)


async def evaluate_return_rate(uow: UnitOfWork, config: FeedbackConfig, *, now: datetime) -> None:
    """Raise the overall return-rate alert on crossing the threshold; resolve it on falling back."""
    figure = await return_rate(uow.conn, now=now, window=config.window_length)
    open_row = await store.open_alert(uow.conn, RETURN_RATE_OVERALL)
    decision = decide_alert(
        figure,
        threshold=config.threshold,
        min_decisions=config.min_decisions,
        currently_open=open_row is not None,
    )
    if decision.action == "keep":
        return
    severity = decision.severity.value if decision.severity else (open_row.severity if open_row else None)
    payload = dict(
        alert_key=RETURN_RATE_OVERALL,
        metric="return_rate",
        group="overall",
        window=config.window,
        threshold=config.threshold,
        severity=severity,
        **asdict(figure),
    )
    if decision.action == "raise":
        if await store.raise_alert(
            uow.conn,
            alert_id=str(uuid.uuid4()),
            alert_key=RETURN_RATE_OVERALL,
            severity=severity,
            raised_at=now,
            figures=payload,
        ):
            uow.emit(AlertRaised(**payload), lead_id=None, key=RETURN_RATE_OVERALL)
    elif await store.resolve_alert(uow.conn, RETURN_RATE_OVERALL, at=now, figures=payload):
        uow.emit(AlertResolved(**payload), lead_id=None, key=RETURN_RATE_OVERALL)


def make_alert_timer(config: FeedbackConfig) -> BackgroundLoop:
    async def alert_timer(runtime: ServiceRuntime, stop: asyncio.Event) -> None:
        """Re-evaluate alerts every so often: windows slide even when no event arrives."""
        while not stop.is_set():
            async with runtime.unit_of_work() as uow:
                await evaluate_return_rate(uow, config, now=utcnow())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=runtime.settings.alert_eval_interval_s)

    return alert_timer
