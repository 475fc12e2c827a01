"""retention: pruning a year and more of history in bounded batches, beside deleting the same
rows in one statement (which holds every row lock until it ends).

`python -m bench --only retention`: Postgres alone (no broker, no services). Seeds
`RETENTION_EVENTS` lead events of `RETENTION_LEADS` leads, half of them dormant for 500 days
(all their events are due) and half with a recent event (none of theirs is), and
`RETENTION_INBOX` inbox ids 100 days old; then prunes them as the services' job does
(`shared.retention.prune`, 5,000 rows a batch) and, on an identical copy of each table,
deletes the same rows in one statement: the ceiling.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncEngine

from leadflow.devstack.postgres import create_database, start_postgres
from services.scoring import retention as scoring_retention
from services.scoring import store as scoring_store
from services.scoring.config_files import load_model
from shared.db import make_engine, migrate
from shared.envelope import utcnow
from shared.retention import Limits, PruneTarget, bound_statement, due_rows, inbox_target, prune
from shared.retention_policy import DataKind
from shared.settings import Settings

RETENTION_EVENTS = 1_000_000
RETENTION_LEADS = 100_000
RETENTION_INBOX = 1_000_000


@dataclass
class PruneTiming:
    what: str
    rows: int
    batched_s: float
    longest_batch_s: float
    one_statement_s: float


async def retention_timings(work: Path) -> list[PruneTiming]:
    postgres = start_postgres(work / "pg")
    try:
        await create_database(postgres.admin_uri, "retention")
        engine = make_engine(Settings(database_url=postgres.database_url("retention")), bounded=False)
        try:
            return await _measure(engine)
        finally:
            await engine.dispose()
    finally:
        postgres.stop()


async def _measure(engine: AsyncEngine) -> list[PruneTiming]:
    await migrate(engine, schema=scoring_store.SCHEMA, versions_dir=scoring_store.MIGRATIONS)
    await _seed(engine)
    now = utcnow()
    model = load_model("config/scoring-model.yaml")
    raw = next(t for t in scoring_retention.targets(model) if t.kind is DataKind.RAW_EVENTS)
    return [
        await _timing(engine, "lead events of dormant leads", raw, now - timedelta(days=395)),
        await _timing(engine, "inbox ids", inbox_target(scoring_store.inbox), now - timedelta(days=38)),
    ]


async def _seed(engine: AsyncEngine) -> None:
    """Half the leads dormant (500 days), half with one event today besides their old ones."""
    leads, events, inbox = (f'"{t.schema}"."{t.name}"' for t in _tables())
    per_lead = RETENTION_EVENTS // RETENTION_LEADS
    async with engine.begin() as conn:
        await conn.execute(
            text(
                f"INSERT INTO {leads} (lead_id) SELECT 'l' || g FROM generate_series(1, {RETENTION_LEADS}) g"
            )
        )
        await conn.execute(
            text(
                f"INSERT INTO {events} (event_id, lead_id, type, occurred_at) "
                f"SELECT 'e' || g, 'l' || (1 + g % {RETENTION_LEADS}), 'page_view', "
                f"now() - interval '500 days' + (g / {per_lead}) * interval '1 second' "
                f"FROM generate_series(1, {RETENTION_EVENTS - RETENTION_LEADS // 2}) g"
            )
        )
        await conn.execute(
            text(
                f"INSERT INTO {events} (event_id, lead_id, type, occurred_at) SELECT 'r' || g, 'l' || g, "
                f"'page_view', now() FROM generate_series({RETENTION_LEADS // 2 + 1}, {RETENTION_LEADS}) g"
            )
        )
        await conn.execute(
            text(
                f"INSERT INTO {inbox} (message_id, topic, processed_at) "
                f"SELECT 'm' || g, 'lead.events', now() - interval '100 days' "
                f"FROM generate_series(1, {RETENTION_INBOX}) g"
            )
        )
    for table in _tables()[1:]:
        await _copy_table(engine, table)
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE"))


def _tables() -> tuple[Table, Table, Table]:
    return scoring_store.leads, scoring_store.lead_events, scoring_store.inbox


async def _copy_table(engine: AsyncEngine, table: Table) -> None:
    """A twin of the table (indexes included) in the `twin` schema, for the one-statement delete."""
    async with engine.begin() as conn:
        await conn.execute(text("CREATE SCHEMA IF NOT EXISTS twin"))
        source = f'"{table.schema}"."{table.name}"'
        await conn.execute(text(f'CREATE TABLE twin."{table.name}" (LIKE {source} INCLUDING ALL)'))
        await conn.execute(text(f'INSERT INTO twin."{table.name}" SELECT * FROM {source}'))


async def _timing(engine: AsyncEngine, what: str, target: PruneTarget, cutoff: datetime) -> PruneTiming:
    started = time.perf_counter()
    pruned = await prune(engine, target, cutoff=cutoff, limits=Limits(batch_rows=5000))
    batched_s = time.perf_counter() - started
    # The ceiling: the same rows in one DELETE, on the twin (the dormancy test reads the twin too).
    twin_rows = due_rows(target).replace(f'"{target.schema}".', "twin.")
    statement = f'DELETE FROM twin."{target.table.name}" WHERE ctid IN (SELECT t.ctid {twin_rows})'
    started = time.perf_counter()
    async with engine.begin() as conn:
        result = await conn.execute(bound_statement(statement, target), {"cutoff": cutoff, **target.params})
    one_statement_s = time.perf_counter() - started
    assert result.rowcount == pruned.rows, (result.rowcount, pruned.rows)
    return PruneTiming(what, pruned.rows, batched_s, pruned.longest_batch_s, one_statement_s)


def retention_report(timings: list[PruneTiming]) -> str:
    lines = [
        "| retention (`python -m bench --only retention`) | rows | batched, 5,000 a statement "
        "| its longest batch | ceiling: one DELETE |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for t in timings:
        batched = f"{t.batched_s:.1f} s ({t.rows / t.batched_s:,.0f} rows/s)"
        ceiling = f"{t.one_statement_s:.1f} s ({t.rows / t.one_statement_s:,.0f} rows/s)"
        lines.append(f"| {t.what} | {t.rows:,} | {batched} | {t.longest_batch_s * 1000:.0f} ms | {ceiling} |")
    return "\n".join(lines)
