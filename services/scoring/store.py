"""scoring's tables (schema `scoring`) and the queries on them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    case,
    cast,
    column,
    delete,
    func,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from services.scoring.backtest import LeadHistory
from services.scoring.domain import LeadEvent
from services.scoring.lifecycle import Rescored
from shared.db import among
from shared.envelope import Envelope
from shared.outbox import inbox_table, outbox_table

SCHEMA = "scoring"
MIGRATIONS = Path(__file__).with_name("migrations")

metadata = MetaData()

leads = Table(
    "leads",
    metadata,
    Column("lead_id", Text, primary_key=True),
    Column("email", Text, unique=True, nullable=True),
    Column("stage", Text, nullable=False, server_default="nurture"),
    Column("cycle", Integer, nullable=False, server_default="1"),
    Column("score", Integer, nullable=False, server_default="0"),
    Column("fit_points", Integer, nullable=False, server_default="0"),
    Column("grade", Text, nullable=False, server_default="D"),
    Column("disqualified", Text, nullable=True),
    Column("explanation", JSONB, nullable=False, server_default="[]"),
    Column("traits", JSONB, nullable=False, server_default="{}"),
    Column("model_version", Text, nullable=True),
    Column("events_count", Integer, nullable=False, server_default="0"),
    Column("mql_at", DateTime(timezone=True), nullable=True),
    Column("recycled_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_leads_stage_score", "stage", "score"),
    schema=SCHEMA,
)

anonymous_ids = Table(
    "anonymous_ids",
    metadata,
    Column("anonymous_id", Text, primary_key=True),
    Column("lead_id", Text, ForeignKey(f"{SCHEMA}.leads.lead_id", ondelete="CASCADE"), nullable=False),
    schema=SCHEMA,
)

lead_events = Table(
    "lead_events",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("lead_id", Text, ForeignKey(f"{SCHEMA}.leads.lead_id", ondelete="CASCADE"), nullable=False),
    Column("type", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("properties", JSONB, nullable=False, server_default="{}"),
    Column("body_digest", Text, nullable=True, comment="LeadEventAccepted.body_digest(); null before 0003"),
    Index("ix_lead_events_lead", "lead_id", "occurred_at"),
    schema=SCHEMA,
)

# Events that came with an event_id already stored under another body: the first body is kept.
event_conflicts = Table(
    "event_conflicts",
    metadata,
    Column("seq", BigInteger, Identity(), primary_key=True),
    Column("event_id", Text, nullable=False),
    Column("lead_id", Text, nullable=False, comment="the lead the conflicting event was about"),
    Column("type", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("stored_digest", Text, nullable=False),
    Column("received_digest", Text, nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("event_id", "received_digest", name="uq_event_conflicts_event_body"),
    Index("ix_event_conflicts_lead", "lead_id"),
    schema=SCHEMA,
)


score_changes = Table(
    "score_changes",
    metadata,
    Column("seq", BigInteger, Identity(), primary_key=True),
    Column("lead_id", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("score", Integer, nullable=False),
    Column("fit_points", Integer, nullable=False),
    Column("grade", Text, nullable=False),
    Column("stage", Text, nullable=False),
    Column("model_version", Text, nullable=False),
    Column("cause", Text, nullable=False, comment="event | rescore"),
    Index("ix_score_changes_lead", "lead_id", "seq"),
    schema=SCHEMA,
)

# Decisions sales made on the lead's handoffs, as seen on lead.lifecycle: what backtests join.
handoff_outcomes = Table(
    "handoff_outcomes",
    metadata,
    Column("lead_id", Text, primary_key=True),
    Column("cycle", Integer, primary_key=True),
    Column("outcome", Text, nullable=False, comment="accepted | sent_back"),
    Column("at", DateTime(timezone=True), nullable=False),
    schema=SCHEMA,
)

# Every sales decision on the lead's handoffs, in order, once each: the labels
# `leadflow model train` learns from (services/scoring/labels.py reads a cycle's decisions).
sales_decisions = Table(
    "sales_decisions",
    metadata,
    Column("message_id", Text, primary_key=True, comment="the lifecycle envelope's id: once each"),
    Column("lead_id", Text, nullable=False),
    Column("cycle", Integer, nullable=False),
    Column("handoff_id", Text, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("reason", Text, nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("exploration", Boolean, nullable=False, server_default="false"),
    Column("propensity", Float, nullable=True, comment="chance an exploration handoff was drawn"),
    Index("ix_sales_decisions_lead", "lead_id", "cycle", "at"),
    schema=SCHEMA,
)

# Trained predictive models (`leadflow model train`), one of them active (`leadflow model activate`).
predictive_models = Table(
    "predictive_models",
    metadata,
    Column("version", Text, primary_key=True),
    Column("digest", Text, nullable=False, comment="sha256 of the trees, features and calibration"),
    Column("trained_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("window_from", DateTime(timezone=True), nullable=False),
    Column("window_to", DateTime(timezone=True), nullable=False),
    Column("holdout_from", DateTime(timezone=True), nullable=False),
    Column("features", JSONB, nullable=False),
    Column("calibration", JSONB, nullable=False),
    Column("metrics", JSONB, nullable=False, comment="the holdout report: model and rule score"),
    Column("booster", Text, nullable=False, comment="LightGBM model text"),
    Column("active", Boolean, nullable=False, server_default="false"),
    Column("activated_at", DateTime(timezone=True), nullable=True),
    Index("uq_predictive_models_one_active", "active", unique=True, postgresql_where=text("active")),
    schema=SCHEMA,
)

# An anonymous lead absorbed into a known one: its id may still be in handoff's or feedback's
# rows, so an erasure of the known lead reaches them too.
lead_merges = Table(
    "lead_merges",
    metadata,
    Column("absorbed", Text, primary_key=True),
    Column("into", Text, nullable=False),
    Index("ix_lead_merges_into", "into"),
    Column("merged_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    schema=SCHEMA,
)

outbox = outbox_table(metadata, SCHEMA)
inbox = inbox_table(metadata, SCHEMA)


async def lock_identities(conn: AsyncConnection, keys: Sequence[int]) -> None:
    """Hold these advisory locks until the transaction ends (`identity.identity_lock_keys`).

    One statement: unnest yields the keys in the array's order, and each lock is taken as its
    row comes, so the locks are taken in the order given, which is what prevents deadlocks."""
    if keys:
        locks = select(func.pg_advisory_xact_lock(column("key"))).select_from(
            func.unnest(cast(list(keys), ARRAY(BigInteger))).alias("key")
        )
        await conn.execute(locks)


async def identities(
    conn: AsyncConnection, *, emails: set[str], anonymous: set[str]
) -> tuple[dict[str, str], dict[str, str], dict[str, str | None]]:
    """What is known of these emails and anonymous ids: lead of each email, lead of each
    anonymous id, and the email of every lead found. Locks the leads for this transaction."""
    lead_of_email: dict[str, str] = {}
    email_of_lead: dict[str, str | None] = {}
    if emails:
        rows = await conn.execute(
            select(leads.c.lead_id, leads.c.email).where(among(leads.c.email, emails)).with_for_update()
        )
        for row in rows:
            lead_of_email[row.email] = row.lead_id
            email_of_lead[row.lead_id] = row.email
    lead_of_anonymous: dict[str, str] = {}
    if anonymous:
        rows = await conn.execute(
            select(anonymous_ids.c.anonymous_id, leads.c.lead_id, leads.c.email)
            .join(leads, anonymous_ids.c.lead_id == leads.c.lead_id)
            .where(among(anonymous_ids.c.anonymous_id, sorted(anonymous)))
            .with_for_update(of=leads)
        )
        for row in rows:
            lead_of_anonymous[row.anonymous_id] = row.lead_id
            email_of_lead[row.lead_id] = row.email
    return lead_of_email, lead_of_anonymous, email_of_lead


async def apply_identity_changes(
    conn: AsyncConnection,
    *,
    create: dict[str, str | None],
    emails_learned: dict[str, str],
    merges: dict[str, str],
    links: dict[str, str],
) -> None:
    if create:
        await conn.execute(insert(leads), [{"lead_id": k, "email": v} for k, v in create.items()])
    for lead_id, email in emails_learned.items():
        await conn.execute(update(leads).where(leads.c.lead_id == lead_id).values(email=email))
    for absorbed, into in merges.items():
        await merge_leads(conn, into=into, absorbed=absorbed)
    if links:
        statement = insert(anonymous_ids).values(
            [{"anonymous_id": a, "lead_id": lead} for a, lead in links.items()]
        )
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=["anonymous_id"], set_={"lead_id": statement.excluded.lead_id}
            )
        )


async def merge_leads(conn: AsyncConnection, *, into: str, absorbed: str) -> None:
    """Move an anonymous lead's history and traits onto the known lead, then drop it. The
    kept lead's traits win where both have one; the absorbed lead's fill the gaps (a person
    known by a userId may have given their title before their email)."""
    absorbed_traits = select(leads.c.traits).where(leads.c.lead_id == absorbed).scalar_subquery()
    nothing = literal_column("'{}'::jsonb", JSONB)
    merged = func.coalesce(absorbed_traits, nothing).op("||", return_type=JSONB)(leads.c.traits)
    await conn.execute(update(leads).where(leads.c.lead_id == into).values(traits=merged))
    await conn.execute(update(lead_events).where(lead_events.c.lead_id == absorbed).values(lead_id=into))
    await conn.execute(update(anonymous_ids).where(anonymous_ids.c.lead_id == absorbed).values(lead_id=into))
    await conn.execute(leads.delete().where(leads.c.lead_id == absorbed))
    await conn.execute(insert(lead_merges).values(absorbed=absorbed, into=into).on_conflict_do_nothing())


async def add_events(conn: AsyncConnection, rows: list[dict[str, Any]]) -> set[str]:
    """Store events (event_id, lead_id, type, occurred_at, properties, body_digest); returns the
    ids that were new."""
    if not rows:
        return set()
    # executemany of one cached statement: a multi-row VALUES would be compiled anew per batch
    result = await conn.execute(
        insert(lead_events)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(lead_events.c.event_id),
        rows,
    )
    return {row.event_id for row in result}


async def stored_digests(conn: AsyncConnection, event_ids: set[str]) -> dict[str, str | None]:
    """The body digest each of these stored events was stored with (None: stored before digests)."""
    query = select(lead_events.c.event_id, lead_events.c.body_digest).where(
        among(lead_events.c.event_id, sorted(event_ids))
    )
    return {row.event_id: row.body_digest for row in await conn.execute(query)}


async def record_conflicts(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Remember conflicting events once each (event_id, received_digest)."""
    if rows:
        await conn.execute(insert(event_conflicts).on_conflict_do_nothing(), rows)


async def conflicts_recorded_now(conn: AsyncConnection) -> int:
    """Conflicts this transaction recorded and kept: `seen_at` is `now()`, its start time."""
    query = select(func.count()).select_from(event_conflicts).where(event_conflicts.c.seen_at == func.now())
    return int((await conn.execute(query)).scalar_one())


async def conflicts_page(conn: AsyncConnection, *, before: int | None, limit: int) -> Sequence[Row[Any]]:
    """Conflicts, newest first, those older than `before` (a `seq`)."""
    query = select(event_conflicts).order_by(event_conflicts.c.seq.desc()).limit(limit)
    if before is not None:
        query = query.where(event_conflicts.c.seq < before)
    return (await conn.execute(query)).all()


async def lead_by_id(conn: AsyncConnection, lead_id: str, *, lock: bool = False) -> Row[Any] | None:
    query = select(leads).where(leads.c.lead_id == lead_id)
    return (await conn.execute(query.with_for_update() if lock else query)).first()


async def leads_by_ids(conn: AsyncConnection, lead_ids: list[str]) -> dict[str, Row[Any]]:
    query = select(leads).where(among(leads.c.lead_id, lead_ids)).with_for_update()
    return {row.lead_id: row for row in await conn.execute(query)}


async def histories(conn: AsyncConnection, lead_ids: list[str]) -> dict[str, list[Any]]:
    query = (
        select(lead_events.c.lead_id, lead_events.c.type, lead_events.c.occurred_at, lead_events.c.properties)
        .where(among(lead_events.c.lead_id, lead_ids))
        .order_by(lead_events.c.lead_id, lead_events.c.occurred_at)
    )
    found: dict[str, list[Any]] = {lead_id: [] for lead_id in lead_ids}
    for row in await conn.execute(query):
        found[row.lead_id].append(row)
    return found


async def update_lead(conn: AsyncConnection, lead_id: str, **values: Any) -> None:
    await conn.execute(
        update(leads).where(leads.c.lead_id == lead_id).values(updated_at=func.now(), **values)
    )


async def update_leads(conn: AsyncConnection, changes: list[dict[str, Any]]) -> None:
    """Apply many leads' new scores at once (each dict: lead_id plus the same set of columns)."""
    if not changes:
        return
    columns = [name for name in changes[0] if name != "lead_id"]
    statement = (
        update(leads)
        .where(leads.c.lead_id == bindparam("_lead_id"))
        .values(
            updated_at=func.now(),
            **{name: bindparam(f"_{name}", type_=leads.c[name].type) for name in columns},
        )
    )
    await conn.execute(statement, [{f"_{k}": v for k, v in change.items()} for change in changes])


async def record_score_changes(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(insert(score_changes), rows)


async def save_rescored(conn: AsyncConnection, evaluated: Sequence[Rescored], *, cause: str) -> None:
    """Each lead's new score, and a row of its score history where its standing changed."""
    await update_leads(conn, [_lead_columns(r) for r in evaluated])
    await record_score_changes(conn, [_score_change(r, cause) for r in evaluated if r.standing_changed])


def _lead_columns(r: Rescored) -> dict[str, Any]:
    return {
        "lead_id": r.lead.lead_id,
        "traits": r.traits,
        "score": r.result.score,
        "fit_points": r.result.fit_points,
        "grade": r.result.grade,
        "disqualified": r.result.disqualified,
        "explanation": [c.model_dump() for c in r.explanation],
        "model_version": r.result.model_version,
        "events_count": r.activity.events_count,
        "stage": r.stage,
        "mql_at": r.mql_at,
    }


def _score_change(r: Rescored, cause: str) -> dict[str, Any]:
    return {
        "lead_id": r.lead.lead_id,
        "occurred_at": r.at,
        "score": r.result.score,
        "fit_points": r.result.fit_points,
        "grade": r.result.grade,
        "stage": r.stage,
        "model_version": r.result.model_version,
        "cause": cause,
    }


async def record_outcome(
    conn: AsyncConnection, *, lead_id: str, cycle: int, outcome: str, at: datetime
) -> None:
    """Remember a sales decision; a lead sent back stays sent back for that cycle."""
    statement = insert(handoff_outcomes).values(lead_id=lead_id, cycle=cycle, outcome=outcome, at=at)
    sent_back = statement.excluded.outcome == "sent_back"
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=["lead_id", "cycle"],
            set_={
                "outcome": case((sent_back, "sent_back"), else_=handoff_outcomes.c.outcome),
                "at": case((sent_back, statement.excluded.at), else_=handoff_outcomes.c.at),
            },
        )
    )


async def record_decision(
    conn: AsyncConnection,
    envelope: Envelope,
    *,
    cycle: int,
    handoff_id: str,
    reason: str | None = None,
    at: datetime | None = None,
    exploration: bool = False,
    propensity: float | None = None,
) -> None:
    """Keep a handoff or a sales decision on it for training; a redelivered one is kept once."""
    statement = insert(sales_decisions).values(
        message_id=envelope.id,
        lead_id=envelope.lead_id,
        cycle=cycle,
        handoff_id=handoff_id,
        event_type=envelope.type,
        reason=reason,
        at=at or envelope.occurred_at,
        exploration=exploration,
        propensity=propensity,
    )
    await conn.execute(statement.on_conflict_do_nothing(index_elements=["message_id"]))


async def clear_outcome(conn: AsyncConnection, *, lead_id: str, cycle: int) -> None:
    """Forget the cycle's outcome: its handoff was reopened, so it is undecided again."""
    await conn.execute(
        delete(handoff_outcomes).where(
            handoff_outcomes.c.lead_id == lead_id, handoff_outcomes.c.cycle == cycle
        )
    )


@dataclass(frozen=True)
class LeadQuery:
    email: str | None = None
    stage: str | None = None
    min_score: int | None = None
    grades: tuple[str, ...] = ()
    after: tuple[int, str] | None = None  # (score, lead_id) of the last lead of the previous page
    limit: int = 50


async def find_leads(conn: AsyncConnection, query: LeadQuery) -> Sequence[Row[Any]]:
    """Leads by score, highest first (ties by id), one page after `query.after`."""
    statement = select(leads).order_by(leads.c.score.desc(), leads.c.lead_id).limit(query.limit)
    if query.email is not None:
        statement = statement.where(leads.c.email == query.email)
    if query.stage is not None:
        statement = statement.where(leads.c.stage == query.stage)
    if query.min_score is not None:
        statement = statement.where(leads.c.score >= query.min_score)
    if query.grades:
        statement = statement.where(leads.c.grade.in_(query.grades))
    if query.after is not None:
        score, lead_id = query.after
        statement = statement.where(
            or_(leads.c.score < score, and_(leads.c.score == score, leads.c.lead_id > lead_id))
        )
    return (await conn.execute(statement)).all()


async def timeline(conn: AsyncConnection, lead_id: str) -> tuple[Sequence[Any], Sequence[Any]]:
    """The lead's events and score changes, each oldest first."""
    events = await conn.execute(
        select(
            lead_events.c.event_id, lead_events.c.type, lead_events.c.occurred_at, lead_events.c.properties
        )
        .where(lead_events.c.lead_id == lead_id)
        .order_by(lead_events.c.occurred_at, lead_events.c.event_id)
    )
    changes = await conn.execute(
        select(score_changes).where(score_changes.c.lead_id == lead_id).order_by(score_changes.c.seq)
    )
    return events.all(), changes.all()


async def lead_ids_page(conn: AsyncConnection, *, after: str | None, limit: int) -> list[str]:
    statement = select(leads.c.lead_id).order_by(leads.c.lead_id).limit(limit)
    if after is not None:
        statement = statement.where(leads.c.lead_id > after)
    return list((await conn.execute(statement)).scalars())


async def stream_histories(conn: AsyncConnection, *, since: datetime) -> AsyncIterator[LeadHistory]:
    """Every lead with events since `since`, with those events and its handoff outcome, one at a time.

    One ordered scan of the event table (streamed, not loaded), joined to the few
    columns of the lead it needs.
    """
    outcome_rows = await conn.execute(select(handoff_outcomes.c.lead_id, handoff_outcomes.c.outcome))
    outcomes: dict[str, str] = {}
    for row in outcome_rows:
        if outcomes.get(row.lead_id) != "sent_back":
            outcomes[row.lead_id] = row.outcome
    query = (
        select(
            lead_events.c.lead_id,
            lead_events.c.type,
            lead_events.c.occurred_at,
            lead_events.c.properties,
            leads.c.email,
            leads.c.traits,
        )
        .join(leads, leads.c.lead_id == lead_events.c.lead_id)
        .where(lead_events.c.occurred_at >= since)
        .order_by(lead_events.c.lead_id, lead_events.c.occurred_at)
        .execution_options(yield_per=10_000)
    )
    result = await conn.stream(query)
    current: str | None = None
    email: str | None = None
    traits: dict[str, Any] = {}
    events: list[LeadEvent] = []
    async for partition in result.partitions():
        for lead_id, kind, occurred_at, properties, lead_email, lead_traits in partition:
            if lead_id != current:
                if current is not None:
                    yield LeadHistory(current, email, traits, events, _outcome(outcomes.get(current)))
                current, email, traits, events = lead_id, lead_email, lead_traits, []
            events.append(LeadEvent(kind, occurred_at, properties))
    if current is not None:
        yield LeadHistory(current, email, traits, events, _outcome(outcomes.get(current)))


def _outcome(value: str | None) -> Literal["accepted", "sent_back"] | None:
    return "sent_back" if value == "sent_back" else "accepted" if value == "accepted" else None
