"""handoff's tables (schema `handoff`) and the queries on them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Update

from services.handoff.availability import AwayWindow
from services.handoff.domain import OPEN_STAGES, Transition
from services.handoff.routing import RouteDecision, RoutingState, TurnTaken
from shared.outbox import inbox_table, outbox_table
from shared.webhooks import webhook_tables

SCHEMA = "handoff"
MIGRATIONS = Path(__file__).with_name("migrations")

metadata = MetaData()

handoffs = Table(
    "handoffs",
    metadata,
    Column("handoff_id", Text, primary_key=True),
    Column("lead_id", Text, nullable=False),
    Column("cycle", Integer, nullable=False),
    Column("stage", Text, nullable=False),
    Column("owner", Text, nullable=False),
    Column("policy", Text, nullable=False),
    Column("decide_by", DateTime(timezone=True), nullable=False),
    Column("qualify_by", DateTime(timezone=True), nullable=True),
    Column("score", Integer, nullable=False),
    Column("grade", Text, nullable=False),
    Column("explanation", JSONB, nullable=False),
    Column("lead", JSONB, nullable=False, comment="email and traits at MQL time"),
    Column("channel", Text, nullable=True),
    Column("campaign", Text, nullable=True),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("team", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("likelihood", JSONB, nullable=True, comment="the predictive model's likelihood and top factors"),
    Column("exploration", Boolean, nullable=False, server_default="false"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("account", JSONB, nullable=True, comment="the lead's account at MQL time (AccountContext)"),
    Column("routing_reason", Text, nullable=True, comment="why this owner (routing.RoutingReason)"),
    Column("routing_rule", Text, nullable=True),
    UniqueConstraint("lead_id", "cycle", name="uq_handoffs_lead_cycle"),
    Index("ix_handoffs_stage_decide_by", "stage", "decide_by"),
    # Each rep's open handoffs are counted on every routing decision that could reach them.
    Index("ix_handoffs_open_by_owner", "owner", postgresql_where=text("stage IN ('mql', 'sal', 'sql')")),
    schema=SCHEMA,
)

history = Table(
    "handoff_history",
    metadata,
    Column("seq", BigInteger, Identity(), primary_key=True),
    Column("handoff_id", Text, nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("from_stage", Text, nullable=True),
    Column("to_stage", Text, nullable=False),
    Column("reason", Text, nullable=True),
    Column("note", Text, nullable=True),
    schema=SCHEMA,
)


sla_timers = Table(
    "sla_timers",
    metadata,
    Column("timer_id", BigInteger, Identity(), primary_key=True),
    Column("handoff_id", Text, nullable=False),
    Column("kind", Text, nullable=False, comment="warning | breach"),
    Column("stage", Text, nullable=False, comment="the stage whose deadline it watches"),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("deadline", DateTime(timezone=True), nullable=False),
    Column("fired_at", DateTime(timezone=True), nullable=True),
    Column("cancelled_at", DateTime(timezone=True), nullable=True),
    # Once per deadline: a stage entered again (a reopen) has timers of its own, and the
    # timers of the first time keep their record (fired or cancelled).
    UniqueConstraint("handoff_id", "kind", "stage", "deadline", name="uq_sla_timers_once"),
    schema=SCHEMA,
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("principal", Text, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("fingerprint", Text, nullable=False),
    Column("status", Integer, nullable=False),
    Column("body", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    schema=SCHEMA,
)

webhooks = webhook_tables(metadata, SCHEMA)

routing_turns = Table(
    "routing_turns",
    metadata,
    Column("team", Text, primary_key=True),
    Column("turn", BigInteger, nullable=False, server_default="0"),
    schema=SCHEMA,
)

rep_availability = Table(
    "rep_availability",
    metadata,
    Column("rep", Text, nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("window_end", DateTime(timezone=True), nullable=False),
    Column("backup", Text, nullable=True),
    Column("set_by", Text, nullable=False, comment="the key's owner or name"),
    PrimaryKeyConstraint("rep", "window_start", name="pk_rep_availability"),
    Index("ix_rep_availability_end", "window_end"),
    comment="out-of-office windows set over the API (the routing file has its own)",
    schema=SCHEMA,
)

outbox = outbox_table(metadata, SCHEMA)
inbox = inbox_table(metadata, SCHEMA)


async def insert_handoff(conn: AsyncConnection, **values: Any) -> bool:
    """False when this lead's cycle already has a handoff (a redelivered MQL)."""
    result = await conn.execute(
        insert(handoffs)
        .values(**values)
        .on_conflict_do_nothing(constraint="uq_handoffs_lead_cycle")
        .returning(handoffs.c.handoff_id)
    )
    return result.first() is not None


async def handoff_of(conn: AsyncConnection, *, lead_id: str, cycle: int) -> Row[Any] | None:
    statement = select(handoffs.c.handoff_id).where(handoffs.c.lead_id == lead_id, handoffs.c.cycle == cycle)
    return (await conn.execute(statement)).first()


_GET = select(handoffs).where(handoffs.c.handoff_id == bindparam("h_id"))  # built once: on every decision
_GET_LOCKED = _GET.with_for_update()


async def get(conn: AsyncConnection, handoff_id: str, *, lock: bool = False) -> Row[Any] | None:
    return (await conn.execute(_GET_LOCKED if lock else _GET, {"h_id": handoff_id})).first()


@dataclass(frozen=True)
class QueueQuery:
    stage: str | None = None
    owners: tuple[str, ...] | None = None  # None: everyone's (a manager's view)
    owner: str | None = None
    due_before: datetime | None = None
    policy: str | None = None
    after: tuple[datetime, str] | None = None  # (deadline, id) of the previous page's last item
    limit: int = 100


def current_deadline() -> Any:
    """The deadline sales works against now: deciding while an MQL, qualifying once accepted."""
    return func.coalesce(handoffs.c.qualify_by, handoffs.c.decide_by)


async def queue(conn: AsyncConnection, query: QueueQuery) -> Sequence[Row[Any]]:
    deadline = current_deadline()
    statement = select(handoffs).order_by(deadline, handoffs.c.handoff_id).limit(query.limit)
    if query.stage is not None:
        statement = statement.where(handoffs.c.stage == query.stage)
    if query.owners is not None:
        statement = statement.where(handoffs.c.owner.in_(query.owners))
    if query.owner is not None:
        statement = statement.where(handoffs.c.owner == query.owner)
    if query.due_before is not None:
        statement = statement.where(deadline < query.due_before)
    if query.policy is not None:
        statement = statement.where(handoffs.c.policy == query.policy)
    if query.after is not None:
        due, handoff_id = query.after
        statement = statement.where(
            or_(deadline > due, and_(deadline == due, handoffs.c.handoff_id > handoff_id))
        )
    return (await conn.execute(statement)).all()


async def change(conn: AsyncConnection, handoff_id: str, **values: Any) -> Row[Any]:
    """Apply changes and a new version; returns the handoff as it is now."""
    result = await conn.execute(
        update(handoffs)
        .where(handoffs.c.handoff_id == handoff_id)
        .values(version=handoffs.c.version + 1, updated_at=func.now(), **values)
        .returning(*handoffs.c)
    )
    return result.one()


async def record(conn: AsyncConnection, **values: Any) -> None:
    await conn.execute(history.insert().values(**values))


def _transition_statement(*, schedules: bool) -> Update:
    """The whole write of a decision as one statement, built once (bound parameters only).

    Cancels the SLA timers of the stage left, schedules the next stage's (when it has a
    deadline), records the history row, writes the event to the outbox and moves the handoff
    to a new version. One round trip and one cached compilation instead of six of each: on
    the API's hot path each statement costs more Python than Postgres.
    """
    p = bindparam
    announced = (
        insert(outbox)
        .values(message_id=p("m_id"), topic=p("m_topic"), key=p("m_key"), payload=p("m_payload"))
        .on_conflict_do_nothing(index_elements=["message_id"])
        .cte("announced")
    )
    cancelled = (
        update(sla_timers)
        .where(
            sla_timers.c.handoff_id == p("h_id"),
            sla_timers.c.stage == p("from_stage"),
            sla_timers.c.fired_at.is_(None),
            sla_timers.c.cancelled_at.is_(None),
        )
        .values(cancelled_at=p("at"))
        .cte("cancelled")
    )
    recorded = (
        history.insert()
        .values(
            handoff_id=p("h_id"),
            at=p("at"),
            actor=p("actor"),
            action=p("action"),
            from_stage=p("from_stage"),
            to_stage=p("to_stage"),
            reason=p("reason"),
            note=p("note"),
        )
        .cte("recorded")
    )
    ctes = [cancelled, recorded, announced]
    values: dict[str, Any] = {
        "stage": p("to_stage"),
        "version": handoffs.c.version + 1,
        "updated_at": func.now(),
    }
    if schedules:
        values["qualify_by"] = p("qualify_by")
        ctes += [
            insert(sla_timers)
            .values(
                handoff_id=p("h_id"), kind=kind, stage=p("to_stage"), due_at=p(due), deadline=p("qualify_by")
            )
            .on_conflict_do_nothing(constraint="uq_sla_timers_once")
            .cte(f"{kind}_timer")
            for kind, due in (("warning", "warn_at"), ("breach", "qualify_by"))
        ]
    return (
        update(handoffs)
        .where(handoffs.c.handoff_id == p("h_id"))
        .values(values)
        .returning(*handoffs.c)
        .add_cte(*ctes)
    )


_TRANSITION = _transition_statement(schedules=False)
_TRANSITION_WITH_SLA = _transition_statement(schedules=True)


async def transition(conn: AsyncConnection, step: Transition, event: Mapping[str, Any]) -> Row[Any]:
    """Apply a decision and store its event (an outbox row); returns the handoff as it is now.

    The caller holds the row lock.
    """
    params = {
        "m_id": event["message_id"],
        "m_topic": event["topic"],
        "m_key": event["key"],
        "m_payload": event["payload"],
        "h_id": step.handoff_id,
        "at": step.at,
        "actor": step.actor,
        "action": step.action,
        "from_stage": step.from_stage,
        "to_stage": step.to_stage,
        "reason": step.reason,
        "note": step.note,
    }
    if step.qualify_by is None:
        return (await conn.execute(_TRANSITION, params)).one()
    params |= {"qualify_by": step.qualify_by, "warn_at": step.warn_at}
    return (await conn.execute(_TRANSITION_WITH_SLA, params)).one()


async def history_of(conn: AsyncConnection, handoff_id: str) -> Sequence[Row[Any]]:
    query = select(history).where(history.c.handoff_id == handoff_id).order_by(history.c.seq)
    return (await conn.execute(query)).all()


# --- SLA timers ----------------------------------------------------------------------


_SCHEDULE = insert(sla_timers).on_conflict_do_nothing(constraint="uq_sla_timers_once")


async def schedule_timers(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Timers (handoff_id, kind, stage, due_at, deadline); a timer already scheduled stays as it is.

    An executemany of one statement: a multi-row VALUES built per call is compiled per call.
    """
    if rows:
        await conn.execute(_SCHEDULE, rows)


async def claim_due_timers(conn: AsyncConnection, *, now: datetime, limit: int) -> Sequence[Row[Any]]:
    """Due timers, locked for this transaction; other instances skip them (fire exactly once)."""
    statement = (
        select(sla_timers)
        .where(
            sla_timers.c.fired_at.is_(None), sla_timers.c.cancelled_at.is_(None), sla_timers.c.due_at <= now
        )
        .order_by(sla_timers.c.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await conn.execute(statement)).all()


async def mark_timer(conn: AsyncConnection, timer_id: int, **values: Any) -> None:
    await conn.execute(update(sla_timers).where(sla_timers.c.timer_id == timer_id).values(**values))


# --- idempotency keys -----------------------------------------------------------------


async def lock_idempotency_key(conn: AsyncConnection, *, principal: str, key: str) -> None:
    """Serialise requests with the same key until this transaction ends."""
    await conn.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"{principal}:{key}"))))


async def remembered_response(conn: AsyncConnection, *, principal: str, key: str) -> Row[Any] | None:
    statement = select(idempotency_keys).where(
        idempotency_keys.c.principal == principal, idempotency_keys.c.key == key
    )
    return (await conn.execute(statement)).first()


async def remember_response(
    conn: AsyncConnection, *, principal: str, key: str, fingerprint: str, status: int, body: Any
) -> bool:
    """False when a concurrent request with the same key got there first."""
    result = await conn.execute(
        insert(idempotency_keys)
        .values(principal=principal, key=key, fingerprint=fingerprint, status=status, body=body)
        .on_conflict_do_nothing()
        .returning(idempotency_keys.c.key)
    )
    return result.first() is not None


# --- routing ----------------------------------------------------------------------------
# The router is pure (routing.route); here is what it reads and how its decision is applied
# so that two instances routing at once never overrun a rep's capacity or reuse a turn.

# Namespace of the per-rep advisory locks (pg_advisory_xact_lock(namespace, hashtext(rep))).
_REP_LOCKS = 0x4C46_0001
_OPEN = [stage.value for stage in OPEN_STAGES]


async def routing_state(conn: AsyncConnection, reps: Sequence[str], *, now: datetime) -> RoutingState:
    """Every team's cursor, the open handoffs of `reps`, and the API-set windows covering `now`."""
    turns = {row.team: int(row.turn) for row in await conn.execute(select(routing_turns))}
    counts = await open_handoffs(conn, reps)
    away = await away_windows(conn, now=now)
    return RoutingState(now=now, turns=turns, open_handoffs=counts, away=away)


async def open_handoffs(conn: AsyncConnection, owners: Sequence[str]) -> dict[str, int]:
    if not owners:
        return {}
    query = (
        select(handoffs.c.owner, func.count())
        .where(handoffs.c.owner.in_(list(owners)), handoffs.c.stage.in_(_OPEN))
        .group_by(handoffs.c.owner)
    )
    return {owner: int(count) for owner, count in await conn.execute(query)}


async def apply_route(conn: AsyncConnection, decision: RouteDecision) -> bool:
    """Take the decision's turn and a place under its owner's capacity, or nothing and False.

    False means another instance moved the team's cursor or filled the rep since the state was
    read: the caller reads the state again and routes anew. The cursor moves by a conditional
    update (only if still where the router saw it); the rep's count is taken again under the
    rep's lock, which every decision that could add to it holds until it commits, so the
    count cannot go stale before this transaction's handoff is in.
    """
    if decision.turn is None and decision.capacity is None:
        return True  # a queue or an uncapped named owner: nothing another instance could take
    savepoint = await conn.begin_nested()
    if decision.turn is not None and not await _move_cursor(conn, decision.turn):
        await savepoint.rollback()
        return False
    if decision.capacity is not None and not await has_room(conn, decision.owner, decision.capacity):
        await savepoint.rollback()
        return False
    await savepoint.commit()
    return True


async def _move_cursor(conn: AsyncConnection, turn: TurnTaken) -> bool:
    await conn.execute(
        insert(routing_turns).values(team=turn.team, turn=0).on_conflict_do_nothing(index_elements=["team"])
    )
    moved = await conn.execute(
        update(routing_turns)
        .where(routing_turns.c.team == turn.team, routing_turns.c.turn == turn.seen)
        .values(turn=turn.next)
        .returning(routing_turns.c.team)
    )
    return moved.first() is not None


async def has_room(conn: AsyncConnection, rep: str, capacity: int) -> bool:
    """Lock the rep (until commit) and count their open handoffs again: True if below `capacity`."""
    await conn.execute(select(func.pg_advisory_xact_lock(_REP_LOCKS, func.hashtext(rep))))
    return (await open_handoffs(conn, [rep])).get(rep, 0) < capacity


async def claim(conn: AsyncConnection, handoff_id: str, *, queue: str, rep: str) -> Row[Any] | None:
    """Give a handoff waiting in `queue` to `rep`; None when it is no longer there (the first claim won)."""
    result = await conn.execute(
        update(handoffs)
        .where(handoffs.c.handoff_id == handoff_id, handoffs.c.owner == queue, handoffs.c.stage == "mql")
        .values(owner=rep, routing_reason="claimed", version=handoffs.c.version + 1, updated_at=func.now())
        .returning(*handoffs.c)
    )
    return result.first()


async def away_windows(conn: AsyncConnection, *, now: datetime, rep: str | None = None) -> list[AwayWindow]:
    """The API-set windows not over at `now` (of one rep, or everyone's)."""
    a = rep_availability
    query = select(a).where(a.c.window_end > now).order_by(a.c.rep, a.c.window_start)
    if rep is not None:
        query = query.where(a.c.rep == rep)
    return [AwayWindow(r.rep, r.window_start, r.window_end, r.backup) for r in await conn.execute(query)]


async def replace_away_windows(
    conn: AsyncConnection, rep: str, windows: Sequence[AwayWindow], *, set_by: str
) -> None:
    """The rep's API-set windows become `windows` (an empty list: back in the office)."""
    await conn.execute(rep_availability.delete().where(rep_availability.c.rep == rep))
    if windows:
        rows = [
            {"rep": rep, "window_start": w.start, "window_end": w.end, "backup": w.backup, "set_by": set_by}
            for w in windows
        ]
        await conn.execute(insert(rep_availability), rows)


# --- reopening ---------------------------------------------------------------------------


async def has_later_cycle(conn: AsyncConnection, *, lead_id: str, cycle: int) -> bool:
    """Whether the lead has a handoff of a cycle after `cycle` (it requalified since)."""
    statement = select(handoffs.c.handoff_id).where(handoffs.c.lead_id == lead_id, handoffs.c.cycle > cycle)
    return (await conn.execute(statement.limit(1))).first() is not None


async def rearm_timers(
    conn: AsyncConnection, handoff_id: str, *, stage: str, warn_at: datetime, deadline: datetime
) -> None:
    """The stage's warning and breach timers for its new deadline (a reopened handoff's).

    The stage's earlier timers stay as they were, fired or cancelled (any still pending is
    cancelled: the new deadline replaces it), so each deadline's breach fires and is kept once;
    a cancelled timer of the very same deadline is armed again."""
    await conn.execute(
        update(sla_timers)
        .where(
            sla_timers.c.handoff_id == handoff_id,
            sla_timers.c.stage == stage,
            sla_timers.c.fired_at.is_(None),
            sla_timers.c.cancelled_at.is_(None),
        )
        .values(cancelled_at=func.now())
    )
    rows = [
        {"handoff_id": handoff_id, "kind": kind, "stage": stage, "due_at": due, "deadline": deadline}
        for kind, due in (("warning", warn_at), ("breach", deadline))
    ]
    statement = insert(sla_timers)
    await conn.execute(
        statement.on_conflict_do_update(  # in business hours the new deadline may be the old one
            constraint="uq_sla_timers_once",
            set_={"due_at": statement.excluded.due_at, "fired_at": None, "cancelled_at": None},
            where=sla_timers.c.fired_at.is_(None),  # a fired timer is a breach on record: kept
        ),
        rows,
    )
