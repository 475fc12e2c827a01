"""The bench's stack: embedded broker and Postgres (with pg_stat_statements), the bench database
migrated, services started as `leadflow serve` processes, and waiting until they answer."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

import asyncpg
import httpx

from leadflow.admin.migrations import migrate_all
from leadflow.devstack.broker import Broker, BrokerKind, choose_broker, start_broker
from leadflow.devstack.ports import free_port
from leadflow.devstack.postgres import Postgres, create_database, start_postgres
from leadflow.devstack.processes import die_with_parent
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


async def with_statement_stats(postgres: Postgres, data_dir: Path) -> Postgres:
    """Postgres restarted with pg_stat_statements loaded, so the bench can count statements."""
    conn = await asyncpg.connect(postgres.admin_uri)
    try:
        await conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
    finally:
        await conn.close()
    postgres.stop()
    return start_postgres(data_dir)


def start_bench_broker(work: Path, kind: BrokerKind | Literal["auto"]) -> Broker:
    """The bench's broker: Apache Kafka where it can run (or when asked), else the embedded one."""
    chosen, reason = choose_broker(kind)
    broker = start_broker(free_port(), kind=chosen, data_dir=work / "kafka")
    print(f"broker: {broker.description}" + (f" ({reason})" if chosen == "embedded" else ""), flush=True)
    return broker


async def prepare(broker: Broker, postgres: Postgres) -> tuple[Settings, dict[str, str]]:
    """The bench database migrated, and the environment the services run with."""
    await create_database(postgres.admin_uri, "bench")
    settings = Settings(
        kafka_bootstrap=broker.bootstrap,
        kafka_idempotent_producer=broker.client_env()["LEADFLOW_KAFKA_IDEMPOTENT_PRODUCER"] == "true",
        database_url=postgres.database_url("bench"),
        topic_prefix="bench.",
        topic_partitions=12,
        admin_key="bench-admin-key-0123456789",
        config_dir=ROOT / "config",
    )
    await migrate_all(settings)
    env = {
        **os.environ,
        "LEADFLOW_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "LEADFLOW_KAFKA_IDEMPOTENT_PRODUCER": str(settings.kafka_idempotent_producer).lower(),
        "LEADFLOW_DATABASE_URL": settings.database_url,
        "LEADFLOW_TOPIC_PREFIX": settings.topic_prefix,
        "LEADFLOW_ADMIN_KEY": settings.admin_key,
        "LEADFLOW_CONFIG_DIR": str(settings.config_dir),
        "LEADFLOW_LOG_LEVEL": "WARNING",
        "LEADFLOW_INTAKE_PORT": str(free_port()),
        "LEADFLOW_SCORING_PORT": str(free_port()),
        "LEADFLOW_HANDOFF_PORT": str(free_port()),
    }
    return settings, env


def libpq_dsn(settings: Settings) -> str:
    """The bench database as asyncpg connects to it (the settings hold SQLAlchemy's URL)."""
    return settings.database_url.replace("postgresql+asyncpg://", "postgresql://")


def serve(service: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "leadflow", "serve", service],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )


async def wait_ready(url: str, path: str = "/readyz", within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    async with httpx.AsyncClient() as client:
        while True:
            try:
                if (await client.get(url + path)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} not ready")
            await asyncio.sleep(0.2)
