"""The platform's settings, which every service reads from `LEADFLOW_*` environment variables.

A service's own settings extend these in `services/<name>/settings.py` (same variables'
prefix); `create()` turns the `Settings` it is given into them with `settings_as`. Every
setting has a default that is safe for the embedded stack (`leadflow dev`); production sets
`LEADFLOW_ENV=production`, which refuses the dev admin key.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, field_validator, model_validator
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

    # Webhook delivery (shared/webhooks.py), which handoff and feedback both run.
    webhook_poll_s: float = Field(default=1.0, gt=0)
    webhook_first_retry_s: float = Field(default=10.0, gt=0, description="first retry delay; then doubling")
    webhook_max_age_h: float = Field(default=24.0, gt=0, description="retry for this long, then mark failed")

    max_body_bytes: int = Field(default=1_048_576, ge=1024)

    # The dev stack (`leadflow dev`, leadflow/devstack/): its broker and demo traffic.
    dev_broker: Literal["auto", "apache", "embedded"] = Field(
        default="auto",
        description="auto: Apache Kafka where Java 17+ is here (data kept on disk), else the embedded one",
    )
    demo: bool = True
    demo_rate: float = Field(default=2.0, gt=0, description="demo events per second")
    dev_drain_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="On Ctrl-C, how long `leadflow dev` waits for consumers and outboxes to drain",
    )
    dev_services: str = Field(
        default=",".join(SERVICES),
        description="the services `leadflow dev` starts, comma-separated (run the others yourself)",
    )

    @model_validator(mode="after")
    def _refuse_dev_secrets_in_production(self) -> Settings:
        if self.env == "production" and (self.admin_key == DEV_ADMIN_KEY or len(self.admin_key) < 24):
            raise ValueError("LEADFLOW_ADMIN_KEY must be set to a secret of 24+ characters in production")
        return self

    @field_validator("dev_services")
    @classmethod
    def _known_services(cls, value: str) -> str:
        unknown = [name for name in value.split(",") if name.strip() not in SERVICES]
        if unknown:
            raise ValueError(f"unknown services {unknown}: choose among {', '.join(SERVICES)}")
        return value

    @property
    def dev_service_names(self) -> list[ServiceName]:
        return [name for name in SERVICES if name in {n.strip() for n in self.dev_services.split(",")}]

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


ServiceSettings = TypeVar("ServiceSettings", bound=Settings)


def settings_as(kind: type[ServiceSettings], settings: Settings | None) -> ServiceSettings:
    """`settings` (default: from the environment) as a service's own settings class.

    Every value `settings` holds wins; the service's fields it does not hold come from the
    environment or their defaults.
    """
    settings = settings or get_settings()
    if isinstance(settings, kind):
        return settings
    # vars(), not model_dump(): `model_copy(update=...)` can give a plain Settings a field of
    # the service's (tests do, e.g. a fast `sla_timer_poll_s`), and only vars() holds it.
    given = {name: value for name, value in vars(settings).items() if name in kind.model_fields}
    return kind(**given)
