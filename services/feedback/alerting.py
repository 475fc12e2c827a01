"""Raising and resolving alerts: return rates over the threshold, and SLA breaches.

An alert's state lives in the `alerts` table (one open row per key at most, by a
unique index), so raising and resolving each happen once per crossing, across
restarts and across instances: only the instance whose write wins emits.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import asdict
from datetime import datetime
from typing import Any

from services.feedback import store
from services.feedback.domain import (
    FeedbackConfig,
    RateFigure,
    Window,
    decide_alert,
    group_alert_key,
    metric_groups,
    rate_figure,
)
from services.feedback.metrics import ALERTS_OPEN, RETURN_RATE, RETURN_RATE_DECISIONS
from services.feedback.projection import Projected, breach_key
from shared.envelope import utcnow
from shared.events import AlertFigures, AlertRaised, AlertResolved
from shared.runtime import BackgroundLoop, ServiceRuntime
from shared.unit_of_work import UnitOfWork

RETURN_RATE_PREFIX = "return_rate:"


async def return_rate_figures(
    uow: UnitOfWork, config: FeedbackConfig, window: Window, *, open_groups: frozenset[str] = frozenset()
) -> dict[str, RateFigure]:
    """The rate of every group alerts watch: `overall` and `<dimension>:<value>`.

    A group holding every decision of the window (one team, one policy) is the overall rate
    under another name, and "no campaign" is not a group anyone can act on: neither is watched
    (but a group whose alert is open keeps its figure until the alert resolves).
    """
    sent_back, decided = await store.decision_counts(uow.conn, window)
    figures = {"overall": rate_figure(sent_back, decided)}
    grouped = await store.grouped_decision_counts(
        uow.conn, window, config.alert_dimensions, config.score_bands
    )
    for dimension, values in grouped.items():
        for value, (group_sent_back, group_decided) in values.items():
            group = f"{dimension}:{value}"
            if value is not None and (group_decided < decided or group in open_groups):
                figures[group] = rate_figure(group_sent_back, group_decided)
    return figures


async def evaluate_return_rates(uow: UnitOfWork, config: FeedbackConfig, *, now: datetime) -> None:
    """Raise each group's alert on crossing the threshold; resolve it on falling back."""
    open_alerts = await store.open_alerts(uow.conn, RETURN_RATE_PREFIX)
    open_groups = frozenset(key.removeprefix(RETURN_RATE_PREFIX) for key in open_alerts)
    window = Window.ending(now, config.window_length)
    figures = await return_rate_figures(uow, config, window, open_groups=open_groups)
    _publish_gauges(metric_groups(figures, config.metric_values))
    for key in open_alerts:
        # A group with no decision left in the window has no rate: its alert resolves.
        figures.setdefault(key.removeprefix(RETURN_RATE_PREFIX), RateFigure(0, 0, None, None, None))
    for group, figure in figures.items():
        key = group_alert_key(group)
        open_row = open_alerts.get(key)
        decision = decide_alert(
            figure,
            threshold=config.threshold,
            min_decisions=config.min_decisions,
            currently_open=open_row is not None,
            open_severity=open_row.severity if open_row else None,
        )
        if decision.action == "keep":
            continue
        severity = decision.severity.value if decision.severity else (open_row.severity if open_row else None)
        payload: dict[str, Any] = dict(
            alert_key=key,
            metric="return_rate",
            group=group,
            window=config.window,
            threshold=config.threshold,
            severity=severity,
            **asdict(figure),
        )
        if decision.action == "raise":
            await _raise(uow, payload, now=now)
        elif decision.action == "escalate":
            await _escalate(uow, payload)
        else:
            await _resolve(uow, payload, now=now)


async def alert_breaches(uow: UnitOfWork, projected: Projected, *, now: datetime) -> None:
    """A breach opens an alert; the handoff leaving the breached stage resolves it."""
    for changes in projected.breaches:  # run by run, as the events came
        for handoff_id, stage, due_at in changes.new:
            row = await store.breach(uow.conn, handoff_id, stage, due_at)
            if row is not None:
                await _raise(uow, _breach_payload(row), now=row.breached_at)
        for row in changes.ended:
            await _resolve(uow, _breach_payload(row), now=row.resolved_at or now)


def _breach_payload(row: Any) -> dict[str, Any]:
    return dict(
        alert_key=breach_key(row.handoff_id, row.stage),
        metric="sla_breach",
        group=f"team:{row.team}" if row.team else f"owner:{row.owner}",
        severity="confirmed",
        handoff_id=row.handoff_id,
        owner=row.owner,
        team=row.team,
        policy=row.policy,
        stage=row.stage,
        due_at=row.due_at,
    )


async def _raise(uow: UnitOfWork, payload: dict[str, Any], *, now: datetime) -> None:
    event = AlertRaised(**payload)
    if await store.raise_alert(
        uow.conn,
        alert_id=str(uuid.uuid4()),
        alert_key=event.alert_key,
        severity=event.severity,
        raised_at=now,
        figures=_figures(event),
    ):
        uow.emit(event, lead_id=None, key=event.alert_key)


async def _escalate(uow: UnitOfWork, payload: dict[str, Any]) -> None:
    """The open alert, now confirmed: announced again as raised, with the higher severity."""
    event = AlertRaised(**payload)
    if await store.escalate_alert(
        uow.conn, event.alert_key, severity=event.severity, figures=_figures(event)
    ):
        uow.emit(event, lead_id=None, key=event.alert_key)


async def _resolve(uow: UnitOfWork, payload: dict[str, Any], *, now: datetime) -> None:
    event = AlertResolved(**payload)
    if await store.resolve_alert(uow.conn, event.alert_key, at=now, figures=_figures(event)) is not None:
        uow.emit(event, lead_id=None, key=event.alert_key)


def _publish_gauges(figures: dict[str, RateFigure]) -> None:
    """The figures alerts watch, for Prometheus; a group gone from the window goes from it too."""
    RETURN_RATE.clear()
    RETURN_RATE_DECISIONS.clear()
    for group, figure in figures.items():
        RETURN_RATE_DECISIONS.labels(group).set(figure.denominator)
        if figure.rate is not None:
            RETURN_RATE.labels(group).set(figure.rate)


def _figures(event: AlertFigures) -> dict[str, Any]:
    return event.model_dump(mode="json", exclude_none=True)


def make_alert_timer(config: FeedbackConfig, *, interval_s: float) -> BackgroundLoop:
    async def alert_timer(runtime: ServiceRuntime, stop: asyncio.Event) -> None:
        """Re-evaluate alerts every so often: windows slide even when no event arrives."""
        while not stop.is_set():
            async with runtime.unit_of_work() as uow:
                await evaluate_return_rates(uow, config, now=utcnow())
                open_counts = await store.open_alert_counts(uow.conn)
            for metric in ("return_rate", "sla_breach"):
                ALERTS_OPEN.labels(metric).set(open_counts.get(metric, 0))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)

    return alert_timer
