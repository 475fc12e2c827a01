"""handoff's use cases about who owns a handoff: routing a new one (with the retry that makes
it safe with several instances), claiming one from a queue, and reps' out-of-office windows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from services.handoff import store
from services.handoff.availability import AwayWindow
from services.handoff.claims import ClaimRefused, claim
from services.handoff.domain import Handoff, HandoffConfig, Stage
from services.handoff.routing import LeadToRoute, RouteDecision, route
from shared.envelope import utcnow
from shared.events import AccountContext
from shared.unit_of_work import UnitOfWork

# Each retry follows a decision another instance made meanwhile, so a few always suffice:
# a turn or a rep taken by someone else is not offered again on the next read.
MAX_ROUTING_ATTEMPTS = 20


class RoutingContention(Exception):
    """Routing lost the race this many times in a row; the batch is retried like a serialization failure."""

    sqlstate = "40001"  # what shared/outages.py reads: a conflict, retried rather than dead-lettered


class UnknownRep(LookupError):
    """A rep the routing config does not know."""


async def assign(
    uow: UnitOfWork, config: HandoffConfig, lead: LeadToRoute, *, now: datetime
) -> RouteDecision:
    """Route by the rules on what the store says now; apply the decision only if that still holds
    (the team's cursor unmoved, room under the owner's cap), else read again and route anew."""
    # Only capped reps' counts matter to the router: none capped, no count to read.
    reps = sorted(r for r in config.routing.rep_names() if config.routing.capacity_of(r) is not None)
    for _ in range(MAX_ROUTING_ATTEMPTS):
        state = await store.routing_state(uow.conn, reps, now=now)
        decision = route(config.routing, lead, state)
        if await store.apply_route(uow.conn, decision):
            return decision
    raise RoutingContention(f"routing lost the race {MAX_ROUTING_ATTEMPTS} times in a row")


async def claim_handoff(
    uow: UnitOfWork, config: HandoffConfig, handoff_id: str, *, rep: str, row: Any
) -> Any:
    """A rep takes a handoff from its queue: first claim wins (conditional update), within the rep's
    capacity; the history and `handoff.claimed` say who took it from where. Returns it as it is now."""
    account = AccountContext.model_validate(row.account) if row.account else None
    claimed = claim(Handoff.of(row), rep, config, account=account)
    if claimed is None:
        return row
    capacity = config.routing.capacity_of(rep)
    if capacity is not None and not await store.has_room(uow.conn, rep, capacity):
        raise ClaimRefused("at_capacity", f"{rep} already holds {capacity} open handoffs, their cap")
    changed = await store.claim(uow.conn, handoff_id, queue=claimed.queue, rep=rep)
    if changed is None:
        raise ClaimRefused("already_claimed", "another rep claimed it first")
    stage = Stage(changed.stage)
    await store.record(
        uow.conn,
        handoff_id=handoff_id,
        at=utcnow(),
        actor=rep,
        action="claim",
        from_stage=stage,
        to_stage=stage,
        reason="claimed",
        note=claimed.note,
    )
    uow.emit(claimed.event, lead_id=changed.lead_id)
    return changed


async def set_availability(
    uow: UnitOfWork, config: HandoffConfig, rep: str, windows: Sequence[AwayWindow], *, set_by: str
) -> None:
    """Replace the rep's out-of-office windows set over the API; reps and backups must be known."""
    for name in [rep, *(w.backup for w in windows if w.backup)]:
        if not config.routing.is_rep(name):
            raise UnknownRep(name)
    await store.replace_away_windows(uow.conn, rep, windows, set_by=set_by)
