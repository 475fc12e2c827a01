"""Pruning what is past its retention: the tables each kind of data lives in, and the job.

A service lists its `PruneTarget`s (one line per table) in its `retention.py`; the runtime
adds its inbox and prunes them all every `LEADFLOW_RETENTION_INTERVAL_S`, and `leadflow
retention run` does the same by hand. How long each kind is kept, and what is due at a
moment, are decided in `shared/retention_policy.py`.

Safe with several instances: each batch is one transaction that first takes
`pg_try_advisory_xact_lock` on the table's lock name; an instance that does not get it
leaves that table to the one that did for this run. A batch deletes at most
`LEADFLOW_RETENTION_BATCH_ROWS` rows picked by `ctid` with `FOR UPDATE SKIP LOCKED`, so it
never waits on a row a service is working on, holds its locks for one short statement, and
two instances can never delete the same row.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import BindParameter, Table, TextClause, bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.db import make_engine
from shared.kafka import redelivery_horizons
from shared.logging import get_logger
from shared.metrics import RETENTION_PRUNED
from shared.retention_policy import DataKind, RetentionPolicy, another_batch, inbox_keep, lock_name
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.webhooks import WebhookTables

log = get_logger(__name__)

# The first key of the two-key advisory locks retention takes (the second: the table's
# lock name hashed); two-key locks never collide with one-key ones such as the migrations'.
_LOCK_CLASS = 746_172_620


@dataclass(frozen=True)
class PruneTarget:
    """A table holding one kind of data: the column that dates a row, and which rows may go.

    `condition` is SQL over the row as `t` that a row must also meet (`:cutoff` is the
    moment before which rows are due; `params` are its other bind values).
    """

    kind: DataKind
    table: Table
    age: str
    condition: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def schema(self) -> str:
        return str(self.table.schema)

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table.name}"

    @property
    def lock(self) -> str:
        return lock_name(self.schema, self.kind, self.table.name)


def inbox_target(inbox: Table) -> PruneTarget:
    """The service's inbox (its cutoff also respects the topics' retention: `inbox_keep`)."""
    return PruneTarget(DataKind.INBOX, inbox, age="processed_at")


def webhook_deliveries_target(tables: WebhookTables) -> PruneTarget:
    """Finished deliveries; a pending one is never pruned (it gives up after a day anyway)."""
    return PruneTarget(
        DataKind.WEBHOOK_DELIVERIES, tables.deliveries, age="created_at", condition="t.status <> 'pending'"
    )


@dataclass(frozen=True)
class Limits:
    batch_rows: int = 5000
    max_rows: int | None = None  # per table and run
    statement_timeout_s: float = 30.0


@dataclass(frozen=True)
class Pruned:
    """What one run did to one table: the rows that went (or would go, on a dry run)."""

    target: PruneTarget
    cutoff: datetime | None
    rows: int = 0
    note: str = ""  # why nothing was done: kept forever, another instance is pruning
    longest_batch_s: float = 0.0  # the longest a batch held its row locks


async def prune(
    engine: AsyncEngine,
    target: PruneTarget,
    *,
    cutoff: datetime | None,
    limits: Limits,
    dry_run: bool = False,
) -> Pruned:
    """Delete the target's rows dated before `cutoff`, a batch per transaction."""
    if cutoff is None:
        return Pruned(target, None, note="kept forever")
    if dry_run:
        async with engine.connect() as conn:
            return Pruned(target, cutoff, await _count_due(conn, target, cutoff))
    pruned, longest = 0, 0.0
    while True:
        started = time.perf_counter()
        async with engine.begin() as conn:
            timeout_ms = int(limits.statement_timeout_s * 1000)
            await conn.execute(text(f"SET LOCAL statement_timeout = {timeout_ms}"))
            if not await _try_lock(conn, target):
                note = "" if pruned else "another instance is pruning"
                return Pruned(target, cutoff, pruned, note=note, longest_batch_s=longest)
            deleted = await _delete_batch(conn, target, cutoff, limits.batch_rows)
        pruned += deleted
        longest = max(longest, time.perf_counter() - started)
        if not another_batch(deleted, batch_rows=limits.batch_rows, pruned=pruned, max_rows=limits.max_rows):
            return Pruned(target, cutoff, pruned, longest_batch_s=longest)


async def _try_lock(conn: AsyncConnection, target: PruneTarget) -> bool:
    statement = text("SELECT pg_try_advisory_xact_lock(:class, hashtext(:name))")
    return bool((await conn.execute(statement, {"class": _LOCK_CLASS, "name": target.lock})).scalar_one())


def due_rows(target: PruneTarget) -> str:
    """The rows of the target due before `:cutoff`, as SQL over `t`."""
    quoted = f'"{target.schema}"."{target.table.name}"'
    where = f't."{target.age}" < :cutoff' + (f" AND ({target.condition})" if target.condition else "")
    return f"FROM {quoted} AS t WHERE {where}"


async def _delete_batch(conn: AsyncConnection, target: PruneTarget, cutoff: datetime, batch_rows: int) -> int:
    # ctid = ANY(ARRAY(...)) is a TID scan: the DELETE touches exactly the rows picked, and
    # the rows are picked FOR UPDATE SKIP LOCKED, so nothing a service holds is waited on.
    quoted = f'"{target.schema}"."{target.table.name}"'
    statement = f"""
        DELETE FROM {quoted}
        WHERE ctid = ANY(ARRAY(SELECT t.ctid {due_rows(target)} LIMIT :batch FOR UPDATE OF t SKIP LOCKED))
    """
    result = await conn.execute(
        bound_statement(statement, target), {"cutoff": cutoff, "batch": batch_rows, **target.params}
    )
    return int(result.rowcount or 0)


async def _count_due(conn: AsyncConnection, target: PruneTarget, cutoff: datetime) -> int:
    statement = f"SELECT count(*) {due_rows(target)}"
    return int(
        (
            await conn.execute(bound_statement(statement, target), {"cutoff": cutoff, **target.params})
        ).scalar_one()
    )


def bound_statement(statement: str, target: PruneTarget) -> TextClause:
    """The statement with list parameters expanded (`t.type NOT IN :kept`)."""
    lists = [name for name, value in target.params.items() if isinstance(value, list)]
    expanding: list[BindParameter[Any]] = [bindparam(name, expanding=True) for name in lists]
    return text(statement).bindparams(*expanding)


async def run_retention(
    engine: AsyncEngine,
    *,
    service: str,
    targets: Sequence[PruneTarget],
    policy: RetentionPolicy,
    now: datetime,
    horizons: Sequence[timedelta | None],
    limits: Limits,
    dry_run: bool = False,
) -> list[Pruned]:
    """Prune every target of a service as of `now`; counted and logged unless a dry run.

    `horizons` are how old a record of each topic the service reads may still be delivered
    (`shared.kafka.redelivery_horizons`): the inbox keeps ids at least that long.
    """
    done = []
    for target in targets:
        keep = policy.keep_of(target.kind)
        if target.kind is DataKind.INBOX:
            keep = inbox_keep(keep, horizons)
        cutoff = None if keep is None else now - keep
        pruned = await prune(engine, target, cutoff=cutoff, limits=limits, dry_run=dry_run)
        if not dry_run and pruned.rows:
            RETENTION_PRUNED.labels(target.kind.value).inc(pruned.rows)
        done.append(pruned)
    if not dry_run:
        log.info(
            "retention_pruned",
            service=service,
            rows={p.target.name: p.rows for p in done},
            skipped={p.target.name: p.note for p in done if p.note},
        )
    return done


async def prune_service(
    settings: Settings,
    *,
    service: str,
    targets: Sequence[PruneTarget],
    topics: list[str],
    now: datetime,
    dry_run: bool = False,
) -> list[Pruned]:
    """One run of a service's retention job: its targets (inbox included) under the settings'
    policy, the inbox kept at least as long as `topics` can redeliver.

    On an engine of its own, one connection, whose statements are bounded by
    LEADFLOW_RETENTION_STATEMENT_TIMEOUT_S rather than the service's request timeout.
    """
    engine = make_engine(settings.model_copy(update={"db_pool_size": 1}), bounded=False)
    try:
        return await run_retention(
            engine,
            service=service,
            targets=targets,
            policy=RetentionPolicy.from_days(settings.retention_days),
            now=now,
            horizons=await topic_horizons(settings, topics),
            limits=Limits(
                batch_rows=settings.retention_batch_rows,
                max_rows=settings.retention_max_rows_per_run or None,
                statement_timeout_s=settings.retention_statement_timeout_s,
            ),
            dry_run=dry_run,
        )
    finally:
        await engine.dispose()


async def topic_horizons(settings: Settings, topics: list[str]) -> list[timedelta | None]:
    """Each topic's redelivery horizon as the cluster says, or the configured one for all when
    it cannot say (the embedded broker cannot describe configs)."""
    if not topics:
        return []
    try:
        return list((await redelivery_horizons(settings.kafka_bootstrap, topics)).values())
    except Exception as exc:
        fallback = timedelta(days=settings.retention_redelivery_horizon_days)
        log.info("topic_retention_unknown", error=str(exc)[:200], assumed_days=fallback.days)
        return [fallback for _ in topics]
