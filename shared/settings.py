"""The platform's settings, which every service reads from `LEADFLOW_*` environment variables.

A service's own settings extend these in `services/<name>/settings.py` (same variables'
prefix); `create()` turns the `Settings` it is given into them with `settings_as`. Every
setting has a default that is safe for the embedded stack (`leadflow dev`); production sets
`LEADFLOW_ENV=production`, which refuses the dev admin key.
"""

from __future__ import annotations

import base64
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import limits
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ServiceName = Literal["intake", "scoring", "handoff", "feedback"]
SERVICES: tuple[ServiceName, ...] = ("intake", "scoring", "handoff", "feedback")
DEV_ADMIN_KEY = "lf_dev_admin_key_change_me"
DEV_PRIVACY_SUBJECT_KEY = "lf_dev_privacy_subject_key_change_me"
# A valid Fernet key, public on purpose: fine for the dev stack and tests, refused in production.
DEV_SECRETS_KEY = "bGVhZGZsb3ctZGV2LXNlY3JldHMta2V5LWNoYW5nZW0="
# Requests per API key, per scope the route requires: writes of events come in bursts, reads
# and decisions come from people; `/metrics` is scraped every few seconds.
DEFAULT_RATE_LIMITS = {
    "events:write": "100/second",
    "leads:read": "20/second",
    "handoffs:read": "20/second",
    "handoffs:write": "10/second",
    "handoffs:manage": "10/second",
    "metrics:read": "20/second",
    "admin": "10/second",
}


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
    topic_min_insync_replicas: int = Field(
        default=1,
        ge=1,
        description="min.insync.replicas of the topics leadflow creates (at most the replication)",
    )
    kafka_idempotent_producer: bool = Field(
        default=True,
        description="the idempotent producer (acks=all, no duplicate on a retried send); the dev stack and "
        "the tests turn it off on the embedded broker, which lacks it",
    )

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
        default=14.0,
        ge=0,
        description="Keep message ids this long (0: forever); never less than the retention of the "
        "topics they came from (shared/retention_policy.inbox_keep)",
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

    # Webhook safety (shared/destinations.py, shared/webhook_transport.py, shared/secret_box.py).
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="comma-separated host names, IPs and CIDRs webhooks may reach although they are "
        "loopback, private, link-local or otherwise not public (e.g. `hooks.internal,10.20.0.0/16`)",
    )
    webhook_max_subscriptions_per_key: int = Field(default=25, ge=1)
    webhook_max_pending_per_subscription: int = Field(
        default=10_000, ge=1, description="beyond it, a subscription's oldest pending deliveries are dropped"
    )
    webhook_secret_grace_h: float = Field(
        default=24.0, ge=0, description="how long the previous secret still signs after a rotation"
    )
    secrets_key: str = Field(
        default=DEV_SECRETS_KEY,
        description="Fernet key (urlsafe base64 of 32 bytes) encrypting webhook signing secrets at rest",
    )

    @field_validator("webhook_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        return [h.strip() for h in value.split(",") if h.strip()] if isinstance(value, str) else value

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
        default=1.5,
        gt=0,
        description="intake: sealing a request and waiting for its acks, in all, before answering 503",
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

    # Rate limits (shared/rate_limits.py) and API keys' lifecycle (shared/auth.py, shared/api_keys.py).
    rate_limits: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_RATE_LIMITS),
        description="requests per API key for each scope a route requires, in `limits` notation "
        '(JSON: {"events:write": "100/second"}); scopes left out keep their default, "" lifts one',
    )
    rate_limit_failed_auth: str = Field(
        default="20/minute", description="failed authentications per client address before 429s"
    )
    rate_limit_strategy: Literal["moving-window", "fixed-window", "sliding-window-counter"] = "moving-window"
    rate_limit_storage: str = Field(
        default="memory://",
        description="where counts live: memory:// counts in each instance alone (N instances admit N "
        "times the limit); redis://host:6379 shares them",
    )
    api_key_unknown_ttl_s: float = Field(
        default=10.0, ge=0, description="an unknown key is answered 401 from memory this long"
    )
    api_key_changes_poll_s: float = Field(
        default=0.5, gt=0, description="each instance reads revoked and rotated keys this often"
    )

    # Privacy (issue 13): the key vault, crypto-shredding and the suppression list (docs/privacy.md).
    privacy_subject_key: str = Field(
        default=DEV_PRIVACY_SUBJECT_KEY,
        min_length=16,
        description="secret of the keyed hash (HMAC-SHA256) naming a person in the vault, message keys "
        "and the suppression list",
    )
    privacy_key_cache_size: int = Field(
        default=100_000, ge=1, description="data keys each process keeps in memory (LRU)"
    )
    privacy_erasures_poll_s: float = Field(
        default=0.5, gt=0, description="each instance reads the keys destroyed by erasures this often"
    )
    privacy_suppressed_events: Literal["refuse", "drop"] = Field(
        default="refuse",
        description="an event for an erased person: refused with a 422 (refuse), or dropped and counted "
        "in leadflow_intake_events_total{outcome=dropped,reason=erased} with a 202 (drop)",
    )

    @field_validator("rate_limits")
    @classmethod
    def _limits_over_the_defaults(cls, value: dict[str, str]) -> dict[str, str]:
        """The scopes given replace their defaults, the others keep theirs; "" lifts a limit."""
        merged = {**DEFAULT_RATE_LIMITS, **value}
        for limit in merged.values():
            if limit:
                limits.parse(limit)  # ValueError names the bad notation
        return {scope: limit for scope, limit in merged.items() if limit}

    @field_validator("rate_limit_failed_auth")
    @classmethod
    def _limit_parses(cls, value: str) -> str:
        limits.parse(value)
        return value

    @model_validator(mode="after")
    def _insync_within_replication(self) -> Settings:
        if self.topic_min_insync_replicas > self.topic_replication:
            raise ValueError("LEADFLOW_TOPIC_MIN_INSYNC_REPLICAS cannot exceed LEADFLOW_TOPIC_REPLICATION")
        return self

    @model_validator(mode="after")
    def _refuse_dev_secrets_in_production(self) -> Settings:
        if self.env == "production" and (self.admin_key == DEV_ADMIN_KEY or len(self.admin_key) < 24):
            raise ValueError("LEADFLOW_ADMIN_KEY must be set to a secret of 24+ characters in production")
        if self.env == "production" and self.secrets_key == DEV_SECRETS_KEY:
            raise ValueError(
                "LEADFLOW_SECRETS_KEY must be set in production (a Fernet key; see docs/operations.md)"
            )
        if self.env == "production" and self.privacy_subject_key == DEV_PRIVACY_SUBJECT_KEY:
            raise ValueError("LEADFLOW_PRIVACY_SUBJECT_KEY must be set to a secret in production")
        return self

    @model_validator(mode="after")
    def _secrets_key_is_a_fernet_key(self) -> Settings:
        try:
            key = base64.urlsafe_b64decode(self.secrets_key.encode())
        except ValueError:
            key = b""
        if len(key) != 32:
            raise ValueError("LEADFLOW_SECRETS_KEY must be a Fernet key: urlsafe base64 of 32 bytes")
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

    # Retention (shared/retention.py, shared/retention_policy.py): how long each kind of data is
    # kept, in days; 0 keeps it forever. The inbox's is `inbox_retention_days` above.
    retention_raw_events_days: float = Field(
        default=395.0,
        ge=0,
        description="scoring's lead events, counted from the lead's latest event (13 months)",
    )
    retention_handoff_history_days: float = Field(
        default=730.0, ge=0, description="handoff's history entries and notes (2 years)"
    )
    retention_webhook_deliveries_days: float = Field(
        default=30.0, ge=0, description="finished webhook deliveries (delivered, failed, dropped)"
    )
    retention_dead_letters_days: float = Field(
        default=30.0, ge=0, description="retention.ms of the dead-letter topics leadflow creates"
    )
    retention_event_conflicts_days: float = Field(
        default=90.0, ge=0, description="scoring's records of reused event ids"
    )
    retention_idempotency_keys_days: float = Field(
        default=7.0, ge=0, description="handoff's Idempotency-Keys and the answers a retry gets"
    )
    retention_interval_s: float = Field(default=3600.0, gt=0, description="how often each service prunes")
    retention_batch_rows: int = Field(default=5000, ge=1, description="rows one DELETE statement removes")
    retention_max_rows_per_run: int = Field(
        default=1_000_000, ge=0, description="rows one run prunes of each table at most (0: no bound)"
    )
    retention_statement_timeout_s: float = Field(
        default=30.0, gt=0, description="one pruning statement (its own, not LEADFLOW_DB_STATEMENT_TIMEOUT_S)"
    )
    retention_redelivery_horizon_days: float = Field(
        default=38.0,
        gt=0,
        description="the oldest record a topic may still deliver, when the broker cannot say "
        "(retention.ms + segment.ms + 1 day); keeps the inbox at least this long",
    )

    @property
    def retention_days(self) -> dict[str, float]:
        """Each kind's retention in days, by `DataKind` value (0: forever)."""
        return {
            "raw_events": self.retention_raw_events_days,
            "handoff_history": self.retention_handoff_history_days,
            "webhook_deliveries": self.retention_webhook_deliveries_days,
            "dead_letters": self.retention_dead_letters_days,
            "inbox": self.inbox_retention_days,
            "event_conflicts": self.retention_event_conflicts_days,
            "idempotency_keys": self.retention_idempotency_keys_days,
        }

    # Tracking API (issue 14): public (browser) write keys, limited per visitor's address too.
    rate_limit_public_address: str = Field(
        default="50/second",
        description="requests one client address may make with one public (browser) write key",
    )
    public_origins_ttl_s: float = Field(
        default=5.0, gt=0, description="intake re-reads the public keys' allowed origins this often"
    )

    @field_validator("rate_limit_public_address")
    @classmethod
    def _public_limit_parses(cls, value: str) -> str:
        limits.parse(value)
        return value


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
