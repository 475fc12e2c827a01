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
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Update

from services.handoff.domain import Transition
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
    UniqueConstraint("lead_id", "cycle", name="uq_handoffs_lead_cycle"),
    Index("ix_handoffs_stage_decide_by", "stage", "decide_by"),
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
    UniqueConstraint("handoff_id", "kind", "stage", name="uq_sla_timers_once"),
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


# --- routing -----------------------------------------------------------------------------


async def next_turn(conn: AsyncConnection, team: str) -> int:
    """The team's round-robin position, advanced by one (safe with several instances)."""
    statement = insert(routing_turns).values(team=team, turn=1)
    result = await conn.execute(
        statement.on_conflict_do_update(
            index_elements=["team"], set_={"turn": routing_turns.c.turn + 1}
        ).returning(routing_turns.c.turn)
    )
    return int(result.scalar_one()) - 1


# --- reopening ---------------------------------------------------------------------------


async def has_later_cycle(conn: AsyncConnection, *, lead_id: str, cycle: int) -> bool:
    """Whether the lead has a handoff of a cycle after `cycle` (it requalified since)."""
    statement = select(handoffs.c.handoff_id).where(handoffs.c.lead_id == lead_id, handoffs.c.cycle > cycle)
    return (await conn.execute(statement.limit(1))).first() is not None


async def rearm_timers(
    conn: AsyncConnection, handoff_id: str, *, stage: str, warn_at: datetime, deadline: datetime
) -> None:
    """The stage's warning and breach timers, due again (a reopened handoff's new deadline).

    A stage's timers exist once per handoff; reopening sets them due anew rather than adding
    a second pair, so each still fires once per deadline."""
    rows = [
        {"handoff_id": handoff_id, "kind": kind, "stage": stage, "due_at": due, "deadline": deadline}
        for kind, due in (("warning", warn_at), ("breach", deadline))
    ]
    statement = insert(sla_timers)
    await conn.execute(
        statement.on_conflict_do_update(
            constraint="uq_sla_timers_once",
            set_={
                "due_at": statement.excluded.due_at,
                "deadline": statement.excluded.deadline,
                "fired_at": None,
                "cancelled_at": None,
            },
        ),
        rows,
    )
