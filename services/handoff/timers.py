"""SLA timers: warnings and breaches, fired exactly once across restarts and instances.

Timers are rows scheduled with the handoff (see handlers.schedule_sla). A loop
claims the due ones with `FOR UPDATE SKIP LOCKED` in a transaction that also
emits the event and marks the timer fired, so each fires once however many
handoff processes run. A timer whose handoff has left the stage it watched is
cancelled instead of fired. A breach may hand the lead to another queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from datetime import datetime

from prometheus_client import Counter

from services.handoff import store
from services.handoff.domain import HandoffConfig
from services.handoff.handlers import reassign
from services.handoff.metrics import SLA_BREACHES, SLA_WARNINGS
from shared.envelope import utcnow
from shared.events import SlaBreached, SlaWarning
from shared.runtime import BackgroundLoop, ServiceRuntime
from shared.unit_of_work import UnitOfWork


async def fire_due_timers(uow: UnitOfWork, config: HandoffConfig, *, now: datetime, limit: int = 100) -> int:
    fired = 0
    for timer in await store.claim_due_timers(uow.conn, now=now, limit=limit):
        handoff = await store.get(uow.conn, timer.handoff_id, lock=True)
        if handoff is None or handoff.stage != timer.stage:
            await store.mark_timer(uow.conn, timer.timer_id, cancelled_at=now)
            continue
        kind = SlaBreached if timer.kind == "breach" else SlaWarning
        event = kind(
            handoff_id=handoff.handoff_id,
            policy=handoff.policy,
            stage=handoff.stage,
            owner=handoff.owner,
            due_at=timer.deadline,
            team=handoff.team,
        )
        uow.emit(event, lead_id=handoff.lead_id, occurred_at=timer.due_at)
        uow.once_before_commit("metrics:sla", functools.partial(count_fired, config=config))
        await store.mark_timer(uow.conn, timer.timer_id, fired_at=now)
        fired += 1
        reassign_to = config.policy_named(handoff.policy).on_breach.reassign_to
        if timer.kind == "breach" and reassign_to:
            await reassign(
                uow, config, handoff.handoff_id, to_owner=reassign_to, actor="leadflow", reason="sla_breached"
            )
    return fired


async def count_fired(uow: UnitOfWork, *, config: HandoffConfig) -> None:
    """Count the warnings and breaches the transaction commits, by policy and team.

    Run as it commits, so timers of a round that fails before (and fire again
    later) are not counted twice; a failing commit itself would be. The team is
    empty when a queue, not a team, owns the handoff. Labels are names of the config, read
    from the event: one the config no longer has (or never had) counts as `other`.
    """
    policies = {p.name for p in config.sla.policies}
    teams = {t.name for t in config.routing.teams} | {""}
    counters: dict[str, Counter] = {SlaWarning.event_type: SLA_WARNINGS, SlaBreached.event_type: SLA_BREACHES}
    for emitted in uow.emitted:
        counter = counters.get(emitted.envelope.type)
        if counter is not None:
            data = emitted.envelope.data
            policy, team = data["policy"], data.get("team") or ""
            policy = policy if policy in policies else "other"
            counter.labels(policy, team if team in teams else "other").inc()


def make_timer_loop(config: HandoffConfig, *, poll_s: float) -> BackgroundLoop:
    async def sla_timers(runtime: ServiceRuntime, stop: asyncio.Event) -> None:
        while not stop.is_set():
            async with runtime.unit_of_work() as uow:
                fired = await fire_due_timers(uow, config, now=utcnow())
            if fired == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=poll_s)

    return sla_timers
