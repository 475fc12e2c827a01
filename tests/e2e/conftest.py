"""The `leadflow dev` stack as separate processes, driven over HTTP and Kafka."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from leadflow.devstack.ports import free_port
from leadflow.devstack.postgres import create_database
from shared.settings import Settings
from tests.conftest import ROOT, database_url, idempotent_producer
from tests.support import loopback_client


@dataclass
class DevStack:
    process: subprocess.Popen[bytes]
    data_dir: Path
    settings: Settings
    admin_key: str

    def state(self) -> dict:
        return json.loads((self.data_dir / "dev.json").read_text())

    def url(self, service: str) -> str:
        return self.settings.url_of(service)  # type: ignore[arg-type]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}


def dev_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    env.update(
        LEADFLOW_DATA_DIR=str(data_dir),
        LEADFLOW_CONFIG_DIR=str(ROOT / "config"),
        LEADFLOW_INTAKE_PORT=str(free_port()),
        LEADFLOW_SCORING_PORT=str(free_port()),
        LEADFLOW_HANDOFF_PORT=str(free_port()),
        LEADFLOW_FEEDBACK_PORT=str(free_port()),
        LEADFLOW_CONSUMER_POLL_MS="50",
        LEADFLOW_OUTBOX_IDLE_POLL_MS="100",
        LEADFLOW_TOPIC_PARTITIONS="3",
        LEADFLOW_LOG_JSON="true",
        LEADFLOW_WEBHOOK_ALLOWED_HOSTS="127.0.0.1",  # the tests' webhook receivers listen there
    )
    env.update(overrides)
    return env


def start_dev(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "leadflow", "dev"],
        env=env,
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def wait_for_banner(process: subprocess.Popen[bytes], log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while "leadflow is running." not in log.read_text(errors="replace"):
        if process.poll() is not None:
            raise AssertionError(f"leadflow dev exited {process.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"leadflow dev not up in {timeout}s:\n{log.read_text()[-3000:]}")
        await asyncio.sleep(0.2)


def stop_dev(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """SIGTERM the stack; returns descendants still alive afterwards (should be none)."""
    descendants = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    _, alive = psutil.wait_procs(descendants, timeout=15)
    return alive


@pytest.fixture(scope="module")
async def stack(
    kafka_bootstrap: str, postgres_admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[DevStack]:
    """`leadflow dev` on the session's broker and a fresh database, without demo traffic."""
    data_dir = tmp_path_factory.mktemp("dev")
    database = f"e2e_{uuid.uuid4().hex[:10]}"
    await create_database(postgres_admin_url, database)
    env = dev_env(
        data_dir,
        LEADFLOW_KAFKA_BOOTSTRAP=kafka_bootstrap,
        LEADFLOW_KAFKA_IDEMPOTENT_PRODUCER=str(idempotent_producer()).lower(),
        LEADFLOW_DATABASE_URL=database_url(postgres_admin_url, database),
        LEADFLOW_TOPIC_PREFIX=f"e2e{uuid.uuid4().hex[:8]}.",
        LEADFLOW_ADMIN_KEY="e2e-admin-key-0123456789abcdef",
        LEADFLOW_DEMO="0",
    )
    log = data_dir / "dev.out"
    process = start_dev(env, log)
    try:
        await wait_for_banner(process, log)
        settings = Settings(
            **{k[len("LEADFLOW_") :].lower(): v for k, v in env.items() if k.startswith("LEADFLOW_")}
        )
        yield DevStack(process, data_dir, settings, env["LEADFLOW_ADMIN_KEY"])
    finally:
        if process.poll() is None:
            stop_dev(process)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with loopback_client(timeout=10.0) as client:
        yield client
