"""One settings object for every service, read from `LEADFLOW_*` environment variables.

Every setting has a default that is safe for the embedded stack (`leadflow dev`);
production sets `LEADFLOW_ENV=production`, which refuses the dev admin key.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ServiceName = Literal["intake", "scoring", "handoff", "feedback"]
SERVICES: tuple[ServiceName, ...] = ("intake", "scoring", "handoff", "feedback")
DEV_ADMIN_KEY = "lf_dev_admin_key_change_me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", extra="ignore")

    env: Literal["dev", "test", "production"] = "dev"
    log_level: str = "INFO"
    log_json: bool | None = Field(
        default=None, description="JSON logs; defaults to on in production, off elsewhere."
    )

    kafka_bootstrap: str = "127.0.0.1:19092"
    topic_prefix: str = ""
    topic_partitions: int = Field(default=12, ge=1)
    topic_replication: int = Field(default=1, ge=1)

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:15432/leadflow"
    db_pool_size: int = Field(default=10, ge=1)

    admin_key: str = DEV_ADMIN_KEY
    config_dir: Path = Path("config")
    data_dir: Path = Path(".leadflow")

    host: str = "127.0.0.1"
    intake_port: int = 8001
    scoring_port: int = 8002
    handoff_port: int = 8003
    feedback_port: int = 8004

    consumer_batch_size: int = Field(default=500, ge=1)
    consumer_poll_ms: int = Field(default=200, ge=1)
    consumer_fetch_max_wait_ms: int = Field(
        default=100,
        ge=1,
        description="Longest a fetch waits for data; bounds latency on brokers without long-poll wake-ups.",
    )
    outbox_batch_size: int = Field(default=500, ge=1)
    outbox_idle_poll_ms: int = Field(default=500, ge=10)
    inbox_retention_days: float = Field(
        default=30.0, gt=0, description="Keep message ids this long; longer than any topic's retention."
    )

    alert_eval_interval_s: float = Field(default=10.0, gt=0)
    sla_timer_poll_s: float = Field(default=1.0, gt=0)
    webhook_poll_s: float = Field(default=1.0, gt=0)
    webhook_first_retry_s: float = Field(default=10.0, gt=0, description="first retry delay; then doubling")
    webhook_max_age_h: float = Field(default=24.0, gt=0, description="retry for this long, then mark failed")
    gauge_refresh_s: float = Field(
        default=15.0, gt=0, description="how often gauges counted in the database (handoffs by stage) refresh"
    )

    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_batch_events: int = Field(default=500, ge=1)

    demo: bool = True
    demo_rate: float = Field(default=2.0, gt=0, description="demo events per second")

    # Outages: how long anything waits on a dependency before the answer is a 503 (or a retry).
    db_connect_timeout_s: float = Field(default=1.0, gt=0, description="opening a Postgres connection")
    db_statement_timeout_s: float = Field(
        default=1.5,
        gt=0,
        description="one statement of a service (server statement_timeout and the client's own bound, "
        "which also covers a frozen server); operator commands are not bounded",
    )
    db_pool_timeout_s: float = Field(default=0.5, gt=0, description="waiting for a free pooled connection")
    produce_timeout_s: float = Field(
        default=1.5, gt=0, description="intake: waiting for the broker's acks before answering 503"
    )
    api_key_stale_s: float = Field(
        default=300.0,
        ge=0,
        description="while Postgres is unreachable, a key seen this recently is still accepted from cache",
    )
    consumer_session_timeout_ms: int = Field(
        default=6000,
        ge=1000,
        description="a consumer that stops heartbeating loses its partitions after this "
        "(within the broker's group.min/max.session.timeout.ms)",
    )
    consumer_heartbeat_interval_ms: int = Field(default=1000, ge=100)
    consumer_max_poll_interval_ms: int = Field(
        default=60_000, ge=1000, description="a consumer stuck this long on one batch leaves the group"
    )
    consumer_instance_id: str | None = Field(
        default=None,
        description="static group membership (KIP-345): a restart with the same id gets its partitions "
        "back without a rebalance; only for stable ids (a StatefulSet's pod name)",
    )
    consumer_stall_s: float = Field(
        default=60.0, gt=0, description="a consumer with lag and no progress this long is not ready"
    )

    @model_validator(mode="after")
    def _refuse_dev_secrets_in_production(self) -> Settings:
        if self.env == "production" and (self.admin_key == DEV_ADMIN_KEY or len(self.admin_key) < 24):
            raise ValueError("LEADFLOW_ADMIN_KEY must be set to a secret of 24+ characters in production")
        return self

    @property
    def json_logs(self) -> bool:
        return self.log_json if self.log_json is not None else self.env == "production"

    def port_of(self, service: ServiceName) -> int:
        port: int = getattr(self, f"{service}_port")
        return port

    def url_of(self, service: ServiceName) -> str:
        return f"http://{self.host}:{self.port_of(service)}"

    def config_file(self, name: str) -> Path:
        return self.config_dir / name


@lru_cache
def get_settings() -> Settings:
    return Settings()
