"""feedback's tables (schema `feedback`): one fact row per handoff, the scoring rules behind
it, SLA breaches, and alerts; and the aggregate queries the metrics are computed from."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    Interval,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    and_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from services.feedback.domain import DIMENSIONS, FunnelFacts, Window, score_band
from shared.db import among
from shared.outbox import inbox_table, outbox_table

SCHEMA = "feedback"
MIGRATIONS = Path(__file__).with_name("migrations")

metadata = MetaData()

handoff_facts = Table(
    "handoff_facts",
    metadata,
    Column("handoff_id", Text, primary_key=True),
    Column("lead_id", Text, nullable=False),
    Column("cycle", Integer, nullable=True),
    Column("owner", Text, nullable=True),
    Column("policy", Text, nullable=True),
    Column("channel", Text, nullable=True),
    Column("campaign", Text, nullable=True),
    Column("grade", Text, nullable=True),
    Column("score", Integer, nullable=True),
    Column("handed_off_at", DateTime(timezone=True), nullable=True),
    Column("decision", Text, nullable=True, comment="accepted | rejected"),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("decided_in_time", Boolean, nullable=True),
    Column("sent_back", Text, nullable=True, comment="rejected | returned"),
    Column("sent_back_at", DateTime(timezone=True), nullable=True),
    Column("reason", Text, nullable=True),
    Column("sql_at", DateTime(timezone=True), nullable=True),
    Column("sqo_at", DateTime(timezone=True), nullable=True),
    Column("disqualified_at", DateTime(timezone=True), nullable=True),
    Column("team", Text, nullable=True),
    Column("source", Text, nullable=True),
    Column("mql_at", DateTime(timezone=True), nullable=True, comment="the cohort: when it became MQL"),
    Column("account_tier", Text, nullable=True, comment="the tier of the lead's account at handoff"),
    Column(
        "account_matched",
        Boolean,
        nullable=True,
        comment="whether the lead had an account at handoff; null: handed off before accounts",
    ),
    Column("won_at", DateTime(timezone=True), nullable=True),
    Column("lost_at", DateTime(timezone=True), nullable=True),
    Column("amount", Numeric(17, 2), nullable=True, comment="a won deal's value, in `currency`"),
    Column("currency", Text, nullable=True),
    Column("lost_reason", Text, nullable=True),
    Column("exploration", Boolean, nullable=True, comment="handed off to explore, not by the MQL rule"),
    Column("likelihood", Integer, nullable=True, comment="the predictive model's likelihood at handoff"),
    Index("ix_handoff_facts_decided_at", "decided_at"),
    Index("ix_handoff_facts_mql_at", "mql_at"),
    schema=SCHEMA,
)

fact_rules = Table(
    "fact_rules",
    metadata,
    Column("handoff_id", Text, nullable=False),
    Column("rule", Text, nullable=False),
    Column("points", Float, nullable=False),
    PrimaryKeyConstraint("handoff_id", "rule", name="pk_fact_rules"),
    schema=SCHEMA,
)

sla_breaches = Table(
    "sla_breaches",
    metadata,
    Column("handoff_id", Text, nullable=False),
    Column("stage", Text, nullable=False),
    Column("policy", Text, nullable=True),
    Column("owner", Text, nullable=True),
    Column("team", Text, nullable=True),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("breached_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    # One per occurrence: a reopened handoff that misses its stage's new deadline breaches again.
    PrimaryKeyConstraint("handoff_id", "stage", "due_at", name="pk_sla_breaches"),
    Index("ix_sla_breaches_breached_at", "breached_at"),
    schema=SCHEMA,
)

alerts = Table(
    "alerts",
    metadata,
    Column("alert_id", Text, primary_key=True),
    Column("alert_key", Text, nullable=False),
    Column("status", Text, nullable=False, comment="open | resolved"),
    Column("severity", Text, nullable=True),
    Column("raised_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("figures", JSONB, nullable=False),
    Index(
        "uq_alerts_one_open_per_key",
        "alert_key",
        unique=True,
        postgresql_where=text("status = 'open'"),
    ),
    schema=SCHEMA,
)


outbox = outbox_table(metadata, SCHEMA)
inbox = inbox_table(metadata, SCHEMA)

# The tables a rebuild replays from `lead.lifecycle`; alerts are history and stay.
PROJECTION = (handoff_facts, fact_rules, sla_breaches)

# Fact columns an event may set. A timestamp or decision, once set, is never overwritten (so a
# redelivery or a replay changes nothing); who owns the handoff follows its latest event.
FACT_COLUMNS = tuple(c.name for c in handoff_facts.columns if c.name not in ("handoff_id", "lead_id"))
LATEST_WINS = ("owner", "team", "policy")


# --- the projection -----------------------------------------------------------------------


async def upsert_facts(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Apply fact rows in order; each names handoff_id, lead_id and any of FACT_COLUMNS."""
    if not rows:
        return
    statement = insert(handoff_facts)
    merged = {
        name: (
            func.coalesce(statement.excluded[name], handoff_facts.c[name])
            if name in LATEST_WINS
            else func.coalesce(handoff_facts.c[name], statement.excluded[name])
        )
        for name in FACT_COLUMNS
    }
    full = [{name: None for name in FACT_COLUMNS} | row for row in rows]
    await conn.execute(statement.on_conflict_do_update(index_elements=["handoff_id"], set_=merged), full)


# What a reopen undoes: the handoff is an MQL again, so its decision and every stage it
# reached after MQL are gone until sales decides again.
REOPEN_CLEARS = (
    "decision",
    "decided_at",
    "decided_in_time",
    "sent_back",
    "sent_back_at",
    "reason",
    "sql_at",
    "sqo_at",
    "disqualified_at",
)


async def reopen_facts(conn: AsyncConnection, handoff_ids: Sequence[str]) -> None:
    """Put reopened handoffs back at MQL. Facts are otherwise first-value-wins; a reopen is the
    one step that takes values back, so it runs between the fact rows before and after it."""
    if handoff_ids:
        await conn.execute(
            update(handoff_facts)
            .where(among(handoff_facts.c.handoff_id, handoff_ids))
            .values({name: None for name in REOPEN_CLEARS})
        )


async def add_rules(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """(handoff_id, rule, points) of the scoring rules that made each lead an MQL."""
    if rows:
        await conn.execute(insert(fact_rules).on_conflict_do_nothing(constraint="pk_fact_rules"), list(rows))


async def add_breaches(
    conn: AsyncConnection, rows: Sequence[dict[str, Any]]
) -> list[tuple[str, str, datetime]]:
    """Record breaches; returns the (handoff_id, stage, due_at) of those not recorded before."""
    new: list[tuple[str, str, datetime]] = []
    for row in rows:
        statement = (
            insert(sla_breaches)
            .values(**row)
            .on_conflict_do_nothing(constraint="pk_sla_breaches")
            .returning(sla_breaches.c.handoff_id, sla_breaches.c.stage, sla_breaches.c.due_at)
        )
        if (inserted := (await conn.execute(statement)).first()) is not None:
            new.append((inserted.handoff_id, inserted.stage, inserted.due_at))
    return new


async def end_breaches(conn: AsyncConnection, left: Sequence[tuple[str, str, datetime]]) -> list[Row[Any]]:
    """Mark breaches over once their handoff left the breached stage; returns those ended now."""
    if not left:
        return []
    # Most transitions end no breach: find the few that do in one query.
    b = sla_breaches
    open_query = select(b.c.handoff_id, b.c.stage).where(
        b.c.resolved_at.is_(None), among(b.c.handoff_id, {handoff_id for handoff_id, _, _ in left})
    )
    still_open = {(row.handoff_id, row.stage) for row in await conn.execute(open_query)}
    ended: list[Row[Any]] = []
    for handoff_id, stage, at in left:
        if (handoff_id, stage) not in still_open:
            continue
        result = await conn.execute(
            update(sla_breaches)
            .where(
                sla_breaches.c.handoff_id == handoff_id,
                sla_breaches.c.stage == stage,
                sla_breaches.c.resolved_at.is_(None),
            )
            .values(resolved_at=at)
            .returning(*sla_breaches.c)
        )
        ended += result.all()
    return ended


async def fact(conn: AsyncConnection, handoff_id: str) -> Row[Any] | None:
    return (await conn.execute(select(handoff_facts).where(handoff_facts.c.handoff_id == handoff_id))).first()


async def breach(conn: AsyncConnection, handoff_id: str, stage: str, due_at: datetime) -> Row[Any] | None:
    """The handoff's breach of the stage's deadline `due_at` (a reopened handoff may miss a second)."""
    b = sla_breaches.c
    query = select(sla_breaches).where(b.handoff_id == handoff_id, b.stage == stage, b.due_at == due_at)
    return (await conn.execute(query)).first()


async def truncate_projection(conn: AsyncConnection) -> None:
    names = ", ".join(f"{SCHEMA}.{table.name}" for table in PROJECTION)
    await conn.execute(text(f"TRUNCATE {names}"))


async def count_handoffs(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(handoff_facts))).scalar_one())


async def projection_snapshot(conn: AsyncConnection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the projection, in key order: what a rebuild must reproduce exactly."""
    snapshot: dict[str, list[tuple[Any, ...]]] = {}
    for table in PROJECTION:
        rows = await conn.execute(select(table).order_by(*table.primary_key.columns))
        snapshot[table.name] = [tuple(row) for row in rows]
    return snapshot


# --- return rates -------------------------------------------------------------------------


def score_band_column(edges: Sequence[int]) -> ColumnElement[Any]:
    """The score band in SQL, labelled exactly as `domain.score_band` labels it."""
    score = handoff_facts.c.score
    whens = [(score < edge, literal(score_band(edge - 1, edges))) for edge in edges]
    last = score_band(edges[-1], edges) if edges else "all"
    return case(*whens, else_=case((score.is_(None), None), else_=literal(last)))


def account_matched_column() -> ColumnElement[Any]:
    matched = handoff_facts.c.account_matched
    return case(
        (matched.is_(True), literal("matched")), (matched.is_(False), literal("unmatched")), else_=None
    )


def dimension_column(dimension: str, edges: Sequence[int]) -> ColumnElement[Any]:
    if dimension == "score_band":
        return score_band_column(edges)
    if dimension == "account_matched":
        return account_matched_column()
    if dimension not in DIMENSIONS:
        raise ValueError(f"unknown dimension {dimension!r}")
    return handoff_facts.c[dimension]


def _decided_in(window: Window, *, exploration: bool = False) -> ColumnElement[bool]:
    """Handoffs first decided in the window (since their last reopen): MQLs by the rule, or
    (asked) exploration handoffs.

    The return rate is the MQL rule's: exploration handoffs are near misses sent on purpose
    and are reported on their own (`exploration_counts`)."""
    f = handoff_facts
    kind = f.c.exploration.is_(True) if exploration else f.c.exploration.is_not(True)
    return and_(
        f.c.decided_at.is_not(None), f.c.decided_at >= window.start, f.c.decided_at <= window.end, kind
    )


async def decision_counts(conn: AsyncConnection, window: Window) -> tuple[int, int]:
    """(sent back, decided) among handoffs first decided in the window."""
    f = handoff_facts
    query = select(func.count().filter(f.c.sent_back.is_not(None)), func.count()).where(_decided_in(window))
    row = (await conn.execute(query)).one()
    return int(row[0]), int(row[1])


async def grouped_decision_counts(
    conn: AsyncConnection, window: Window, dimensions: Sequence[str], edges: Sequence[int]
) -> dict[str, dict[str | None, tuple[int, int]]]:
    """(sent back, decided) per value of each dimension, in one pass (GROUPING SETS)."""
    if not dimensions:
        return {}
    columns = [dimension_column(d, edges).label(d) for d in dimensions]
    f = handoff_facts
    query = (
        select(
            *columns,
            func.grouping(*[c.element for c in columns]).label("grouping"),
            func.count().filter(f.c.sent_back.is_not(None)),
            func.count(),
        )
        .where(_decided_in(window))
        .group_by(func.grouping_sets(*[c.element for c in columns]))
    )
    counts: dict[str, dict[str | None, tuple[int, int]]] = {d: {} for d in dimensions}
    for row in await conn.execute(query):
        dimension = _grouped_dimension(row.grouping, dimensions)
        counts[dimension][row._mapping[dimension]] = (int(row[-2]), int(row[-1]))
    return counts


def _grouped_dimension(grouping: int, dimensions: Sequence[str]) -> str:
    """GROUPING() sets a bit for every column not grouped on; the one clear bit is ours."""
    width = len(dimensions)
    for i, dimension in enumerate(dimensions):
        if not grouping & (1 << (width - 1 - i)):
            return dimension
    raise ValueError(f"no grouped column in GROUPING() = {grouping}")


async def reason_counts(
    conn: AsyncConnection, window: Window, dimension: str | None, edges: Sequence[int]
) -> dict[str | None, dict[str, int]]:
    """Sent-back leads per reason, per value of `dimension` (or overall, under None)."""
    f = handoff_facts
    group = dimension_column(dimension, edges) if dimension else literal(None)
    query = (
        select(group.label("value"), func.coalesce(f.c.reason, "other").label("reason"), func.count())
        .where(_decided_in(window), f.c.sent_back.is_not(None))
        .group_by(text("1"), text("2"))
    )
    reasons: dict[str | None, dict[str, int]] = {}
    for value, reason, count in await conn.execute(query):
        reasons.setdefault(value, {})[reason] = int(count)
    return reasons


async def decision_series(
    conn: AsyncConnection, ends: Sequence[datetime], length: timedelta
) -> list[tuple[datetime, int, int]]:
    """(end, sent back, decided) of the window of `length` ending at each of `ends`."""
    f = handoff_facts
    ends_param = bindparam("ends", type_=ARRAY(DateTime(timezone=True)))
    points = select(func.unnest(ends_param, type_=DateTime(timezone=True)).label("at")).subquery()
    since = bindparam("length", type_=Interval)
    query = (
        select(
            points.c.at,
            func.count(f.c.handoff_id).filter(f.c.sent_back.is_not(None)),
            func.count(f.c.handoff_id),
        )
        .select_from(
            points.outerjoin(
                f,
                and_(
                    f.c.decided_at >= points.c.at - since,
                    f.c.decided_at <= points.c.at,
                    f.c.exploration.is_not(True),
                ),
            )
        )
        .group_by(points.c.at)
        .order_by(points.c.at)
    )
    rows = await conn.execute(query, {"ends": list(ends), "length": length})
    return [(at, int(sent_back), int(decided)) for at, sent_back, decided in rows]


async def rule_counts(
    conn: AsyncConnection, window: Window
) -> tuple[dict[str, tuple[int, int]], dict[tuple[str, str], int]]:
    """Per scoring rule: (sent back, decided) among leads it contributed to, and sent back by reason."""
    f, r = handoff_facts, fact_rules
    joined = f.join(r, r.c.handoff_id == f.c.handoff_id)
    totals = select(r.c.rule, func.count().filter(f.c.sent_back.is_not(None)), func.count())
    by_rule = {
        rule: (int(sent_back), int(decided))
        for rule, sent_back, decided in await conn.execute(
            totals.select_from(joined).where(_decided_in(window)).group_by(r.c.rule)
        )
    }
    reasons = select(r.c.rule, func.coalesce(f.c.reason, "other"), func.count())
    by_reason = {
        (rule, reason): int(count)
        for rule, reason, count in await conn.execute(
            reasons.select_from(joined)
            .where(_decided_in(window), f.c.sent_back.is_not(None))
            .group_by(text("1"), text("2"))
        )
    }
    return by_rule, by_reason


async def exploration_counts(conn: AsyncConnection, window: Window) -> dict[str, int]:
    """Of exploration handoffs: how many were made in the window, and of those first decided
    in it, how many sales sent back and how many it took on (SQL or beyond)."""
    f = handoff_facts
    made = select(func.count()).where(
        f.c.exploration.is_(True), f.c.handed_off_at >= window.start, f.c.handed_off_at <= window.end
    )
    taken_on = or_(f.c.sql_at.is_not(None), f.c.sqo_at.is_not(None), f.c.won_at.is_not(None))
    decided = select(
        func.count(), func.count().filter(f.c.sent_back.is_not(None)), func.count().filter(taken_on)
    ).where(_decided_in(window, exploration=True))
    row = (await conn.execute(decided)).one()
    return {
        "handoffs": int((await conn.execute(made)).scalar_one()),
        "decided": int(row[0]),
        "sent_back": int(row[1]),
        "taken_on": int(row[2]),
    }


async def model_projection_counts(conn: AsyncConnection, window: Window) -> tuple[int, float, int]:
    """Of the MQLs first decided in the window that carried a likelihood: (decided, projected
    sent back, actually sent back). Projected: the sum of (100 - likelihood) / 100."""
    f = handoff_facts
    query = select(
        func.count(),
        func.coalesce(func.sum(100 - f.c.likelihood), 0),
        func.count().filter(f.c.sent_back.is_not(None)),
    ).where(_decided_in(window), f.c.likelihood.is_not(None))
    decided, projected, sent_back = (await conn.execute(query)).one()
    return int(decided), float(projected) / 100.0, int(sent_back)


# --- the funnel ---------------------------------------------------------------------------


async def funnel_facts(conn: AsyncConnection, since: datetime) -> list[FunnelFacts]:
    """The funnel facts of every handoff whose lead reached MQL at or after `since`."""
    return (await grouped_funnel_facts(conn, since, None, [])).get(None, [])


async def grouped_funnel_facts(
    conn: AsyncConnection, since: datetime, dimension: str | None, edges: Sequence[int]
) -> dict[str | None, list[FunnelFacts]]:
    """`funnel_facts` by value of `dimension` (all under None when it is None)."""
    f, b = handoff_facts, sla_breaches
    entered = f.c.mql_at
    breaches = select(func.count()).where(b.c.handoff_id == f.c.handoff_id).scalar_subquery()
    group = dimension_column(dimension, edges) if dimension else literal(None)
    query = select(
        group.label("group_value"),
        entered.label("entered_at"),
        f.c.handed_off_at,
        f.c.decision,
        f.c.decided_at,
        f.c.decided_in_time,
        f.c.sent_back_at,
        f.c.sql_at,
        f.c.sqo_at,
        f.c.disqualified_at,
        f.c.won_at,
        f.c.lost_at,
        breaches.label("breaches"),
    ).where(entered >= since)
    grouped: dict[str | None, list[FunnelFacts]] = {}
    for row in await conn.execute(query):
        values = dict(row._mapping)
        grouped.setdefault(values.pop("group_value"), []).append(FunnelFacts(**values))
    return grouped


async def breaches_by_team(conn: AsyncConnection, since: datetime) -> list[tuple[str | None, int, int]]:
    """(team, breaches, still open) of breaches since `since`, most breaches first."""
    b = sla_breaches
    query = (
        select(b.c.team, func.count(), func.count().filter(b.c.resolved_at.is_(None)))
        .where(b.c.breached_at >= since)
        .group_by(b.c.team)
        .order_by(func.count().desc(), b.c.team)
    )
    return [(team, int(total), int(still_open)) for team, total, still_open in await conn.execute(query)]


# --- alerts -------------------------------------------------------------------------------


async def open_alerts(conn: AsyncConnection, prefix: str) -> dict[str, Row[Any]]:
    """The open alerts whose key starts with `prefix`, by key."""
    query = select(alerts).where(alerts.c.status == "open", alerts.c.alert_key.startswith(prefix))
    return {row.alert_key: row for row in await conn.execute(query)}


async def open_alert_counts(conn: AsyncConnection) -> dict[str, int]:
    """Open alerts per metric (`return_rate`, `sla_breach`)."""
    metric = alerts.c.figures["metric"].astext
    query = select(metric, func.count()).where(alerts.c.status == "open").group_by(metric)
    return {name: int(count) for name, count in await conn.execute(query)}


async def raise_alert(conn: AsyncConnection, **values: Any) -> bool:
    """False when another instance already holds this key open."""
    result = await conn.execute(
        insert(alerts)
        .values(status="open", **values)
        .on_conflict_do_nothing(index_elements=["alert_key"], index_where=text("status = 'open'"))
        .returning(alerts.c.alert_id)
    )
    return result.first() is not None


async def escalate_alert(
    conn: AsyncConnection, alert_key: str, *, severity: str | None, figures: dict[str, Any]
) -> bool:
    """Raise the severity of the open alert of this key; False when another instance did it first."""
    result = await conn.execute(
        update(alerts)
        .where(alerts.c.alert_key == alert_key, alerts.c.status == "open", alerts.c.severity != severity)
        .values(severity=severity, figures=figures)
        .returning(alerts.c.alert_id)
    )
    return result.first() is not None


async def resolve_alert(
    conn: AsyncConnection, alert_key: str, *, at: datetime, figures: dict[str, Any]
) -> Row[Any] | None:
    """Resolve the open alert of this key; None when none is open (another instance got there)."""
    result = await conn.execute(
        update(alerts)
        .where(alerts.c.alert_key == alert_key, alerts.c.status == "open")
        .values(status="resolved", resolved_at=at, figures=figures)
        .returning(*alerts.c)
    )
    return result.first()


async def list_alerts(conn: AsyncConnection, *, status: str | None, limit: int) -> Sequence[Row[Any]]:
    query = select(alerts).order_by(alerts.c.raised_at.desc()).limit(limit)
    if status is not None:
        query = query.where(alerts.c.status == status)
    return (await conn.execute(query)).all()
