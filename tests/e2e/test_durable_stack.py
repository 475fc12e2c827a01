"""`leadflow dev` on its own Apache Kafka and Postgres loses no accepted event: not over Ctrl-C
with scoring down, not over a SIGKILL of the stack, and it leaves nothing running behind it.

Three starts on one data directory (no LEADFLOW_KAFKA_BOOTSTRAP / LEADFLOW_DATABASE_URL: the
stack starts its own broker and Postgres there), each a ~15-25 s start of the whole stack.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import uuid
from pathlib import Path

import psutil
from sqlalchemy import text

from leadflow.devstack.postgres import start_postgres
from shared.db import make_engine
from shared.settings import Settings
from tests.e2e.conftest import dev_env, start_dev, wait_for_banner
from tests.support import eventually, loopback_client, now_minus, unique_email


def page_views(batch: str, emails: list[str], per_lead: int) -> list[dict]:
    return [
        {
            "event_id": f"dur-{batch}-{i}-{n}",
            "type": "page_view",
            "occurred_at": now_minus(per_lead - n),
            "email": email,
            "properties": {"url": f"https://leadflow.example/blog/{batch}/{n}"},
        }
        for i, email in enumerate(emails)
        for n in range(per_lead)
    ]


class Stack:
    """One `leadflow dev` process on `data_dir`, driven as a user would."""

    def __init__(self, data_dir: Path, env: dict[str, str], logs: Path) -> None:
        self.data_dir, self.env, self.logs = data_dir, env, logs
        self.process: subprocess.Popen[bytes]
        self.starts = 0

    @property
    def log(self) -> Path:
        return self.logs / f"dev-{self.starts}.out"

    async def start(self) -> None:
        self.starts += 1
        self.process = start_dev(self.env, self.log)
        await wait_for_banner(self.process, self.log)

    def output(self) -> str:
        """What this start printed."""
        return self.log.read_text(errors="replace")

    def url(self, port_var: str) -> str:
        return f"http://127.0.0.1:{self.env[port_var]}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {(self.data_dir / 'admin-key').read_text().strip()}"}

    async def accept(self, events: list[dict]) -> None:
        async with loopback_client(timeout=30.0) as client:
            url = f"{self.url('LEADFLOW_INTAKE_PORT')}/v1/events/batch"
            response = await client.post(url, json={"events": events}, headers=self.headers)
        assert response.status_code == 202, response.text

    async def events_counted(self, emails: list[str]) -> list[int]:
        async with loopback_client(timeout=10.0) as client:
            url = f"{self.url('LEADFLOW_SCORING_PORT')}/v1/leads"
            pages = [
                (await client.get(url, params={"email": e}, headers=self.headers)).json() for e in emails
            ]
        return [page["items"][0]["events_count"] if page["items"] else 0 for page in pages]

    def ctrl_c(self) -> tuple[str, list[psutil.Process]]:
        """SIGINT, as a terminal's Ctrl-C; returns the drain line and the children still alive."""
        children = psutil.Process(self.process.pid).children(recursive=True)
        self.process.send_signal(signal.SIGINT)
        assert self.process.wait(timeout=120) == 0, self.output()[-3000:]
        _, alive = psutil.wait_procs(children, timeout=10)
        [line] = re.findall(
            r"^leadflow: (?:drained|drain |could not drain).*$", self.output(), flags=re.MULTILINE
        )
        return line, alive

    def running_from_data_dir(self) -> list[str]:
        """Processes whose command line names the data directory: a postmaster, a Kafka JVM."""
        return [" ".join(p.info["cmdline"])[:200] for p in self._from_data_dir()]

    def _from_data_dir(self) -> list[psutil.Process]:
        found = []
        for process in psutil.process_iter(["cmdline", "status"]):
            cmdline = " ".join(process.info["cmdline"] or [])
            if str(self.data_dir) in cmdline and process.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(process)
        return found

    def kill_everything(self) -> None:
        """After a failure: nothing of this test may outlive it (its services would join other stacks)."""
        if self.starts and self.process.poll() is None:
            children = psutil.Process(self.process.pid).children(recursive=True)
            self.process.kill()
            self.process.wait()
            for child in children:
                with contextlib.suppress(psutil.Error):
                    child.kill()
        for process in self._from_data_dir():
            with contextlib.suppress(psutil.Error):
                process.kill()


async def stored_events(data_dir: Path, batches: str) -> list[int]:
    """Events of each batch scoring stored, read from the stack's own Postgres (started for the look)."""
    server = start_postgres(data_dir / "postgres")
    try:
        engine = make_engine(Settings(database_url=server.database_url("leadflow"), db_pool_size=1))
        query = text("SELECT count(*) FROM scoring.lead_events WHERE event_id LIKE :prefix")
        try:
            async with engine.connect() as conn:
                return [
                    int((await conn.execute(query, {"prefix": f"dur-{batch}-%"})).scalar_one())
                    for batch in batches
                ]
        finally:
            await engine.dispose()
    finally:
        server.stop()


async def test_accepted_events_outlive_ctrl_c_with_scoring_down_and_a_killed_stack(tmp_path: Path) -> None:
    data_dir = (tmp_path / "data").resolve()
    # A topic prefix of its own: a stray leadflow process that finds its broker cannot join its groups.
    prefix = f"dur{uuid.uuid4().hex[:8]}."
    env = dev_env(data_dir, LEADFLOW_DEMO="0", LEADFLOW_DEV_BROKER="apache", LEADFLOW_TOPIC_PREFIX=prefix)
    stack = Stack(data_dir, env, tmp_path)
    try:
        first, second, third = (
            [unique_email(f"{batch}{i}") for i in range(n)] for batch, n in (("a", 30), ("b", 20), ("c", 10))
        )

        async def all_scored(emails: list[str]) -> bool | None:
            return all(count == 10 for count in await stack.events_counted(emails)) or None

        # 1. Without scoring, 300 events get their 202; Ctrl-C cannot drain what scoring would do
        #    and says what it leaves.
        stack.env = {**env, "LEADFLOW_DEV_SERVICES": "intake,handoff,feedback"}
        await stack.start()
        await stack.accept(page_views("a", first, per_lead=10))
        line, alive = stack.ctrl_c()
        assert line.startswith("leadflow: drained in ") and " without scoring (down): " in line
        assert "left lag 300 (scoring lead.events 300)" in line and "kept for the next start" in line
        assert alive == [] and stack.running_from_data_dir() == []

        # 2. The next start on the same data directory scores every one of them (Apache Kafka kept
        #    them); then the stack is killed outright with 200 more accepted.
        stack.env = env
        await stack.start()
        await eventually(lambda: all_scored(first), timeout=90)
        await stack.accept(page_views("b", second, per_lead=10))
        stack.process.send_signal(signal.SIGKILL)
        stack.process.wait(timeout=10)
        assert any("postgres" in c for c in stack.running_from_data_dir())  # the postmaster outlives it

        # 3. The start after the kill takes over what it left; its Ctrl-C drains 100 more events
        #    and leaves nothing running.
        await stack.start()
        assert "leadflow: taking over the Postgres a killed leadflow dev left running" in stack.output()
        await stack.accept(page_views("c", third, per_lead=10))
        line, alive = stack.ctrl_c()
        drained = re.fullmatch(r"leadflow: drained in (\d+\.\d) s \(lag 0, outbox 0\)", line)
        assert drained, line
        assert float(drained.group(1)) < 60
        assert alive == []
        assert stack.running_from_data_dir() == []
        assert not (data_dir / "dev.json").exists()

        assert await stored_events(data_dir, "abc") == [300, 200, 100]
    finally:
        stack.kill_everything()
