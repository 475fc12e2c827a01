"""Postgres access: one async engine per service, each service in its own schema.

Migrations are alembic revisions kept next to each service
(`services/<name>/migrations/`); they run at start-up under an advisory lock so
several instances starting at once migrate once.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import ColumnElement, Connection, any_, bindparam, event, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.settings import Settings


def among(column: ColumnElement[Any], values: Iterable[Any]) -> ColumnElement[bool]:
    """`column = ANY($1)`, the values as one array parameter: the statement's text, and so
    asyncpg's prepared statement, is the same however many values a batch brings. `in_` renders
    one parameter per value, so each list length is a statement compiled (and prepared by
    Postgres) of its own."""
    return column == any_(bindparam(None, list(values), type_=ARRAY(column.type), unique=True))


_ALEMBIC_ENV = Path(__file__).with_name("migrations")
_MIGRATION_LOCK = 7_461_726_201  # any constant: the advisory-lock id of leadflow migrations


def make_engine(settings: Settings, *, bounded: bool = True) -> AsyncEngine:
    """The engine of a service; `bounded=False` for operator commands, whose statements may be long.

    Bounded, nothing waits on Postgres longer than the settings say: opening a connection
    (`LEADFLOW_DB_CONNECT_TIMEOUT_S`), a free pooled connection (`..._POOL_TIMEOUT_S`) and a
    statement (`..._STATEMENT_TIMEOUT_S`: Postgres cancels it, and the client gives up on its
    own as well, which is what ends the wait on a server that is frozen rather than down).
    """
    # No pre-ping: with asyncpg it is three round trips (BEGIN, a ping, ROLLBACK) before every
    # checkout, about 0.3 ms of CPU per request on the handoff API. Without it a connection that
    # died with Postgres fails its next statement once (a 503 with Retry-After for a request, a
    # retried batch for a consumer), and SQLAlchemy then replaces every pooled connection
    # opened before the failure.
    limits: dict[str, Any] = {}
    if bounded:
        statement_ms = int(settings.db_statement_timeout_s * 1000)
        limits = {
            "pool_timeout": settings.db_pool_timeout_s,
            "connect_args": {
                "timeout": settings.db_connect_timeout_s,
                "command_timeout": settings.db_statement_timeout_s,
                "server_settings": {"statement_timeout": str(statement_ms)},
            },
        }
    engine = create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=False,
        hide_parameters=True,  # error messages (and so logs) carry no values: emails, names
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        **limits,
    )
    event.listen(engine.sync_engine, "handle_error", _drop_connection_after_timeout)
    return engine


def _drop_connection_after_timeout(context: ExceptionContext) -> None:
    """A statement the client gave up on (or a broken socket) leaves its connection in an unknown
    state: drop it at once. Left to SQLAlchemy, it would first roll back, which a frozen server
    never answers, doubling the wait."""
    if not isinstance(context.original_exception, OSError):  # TimeoutError is an OSError
        return
    context.is_disconnect = True
    if context.connection is not None:
        driver_connection = context.connection.connection.driver_connection
        if driver_connection is not None:
            driver_connection.terminate()


def _json_dumps(value: object) -> str:
    return orjson.dumps(value).decode()


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def migrate(engine: AsyncEngine, *, schema: str, versions_dir: Path) -> None:
    """Bring `schema` to the newest revision found in `versions_dir`."""
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK})
        await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        await conn.run_sync(_upgrade, schema, versions_dir)


def _upgrade(conn: Connection, schema: str, versions_dir: Path) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(_ALEMBIC_ENV))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", str(versions_dir))
    cfg.attributes["connection"] = conn
    cfg.attributes["schema"] = schema
    command.upgrade(cfg, "heads")
