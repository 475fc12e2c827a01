"""Retention: how long each kind of data is kept, and what is due to go at a given moment.

Pure: durations and moments in, decisions out. The tables each kind covers and the
statements that prune them are in `shared/retention.py`; the settings that set the
durations are `LEADFLOW_RETENTION_*_DAYS` (and `LEADFLOW_INBOX_RETENTION_DAYS`), where 0
means "keep forever".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

DAY_MS = 86_400_000
# Kafka deletes a whole segment once its newest record is past retention.ms, so a record
# can outlive retention.ms by up to segment.ms; a day on top covers clock skew between
# the broker's record timestamps and Postgres' now().
REDELIVERY_MARGIN = timedelta(days=1)


class DataKind(StrEnum):
    """A kind of data with its own retention; its value names it in settings, logs and metrics."""

    RAW_EVENTS = "raw_events"  # scoring.lead_events: what a lead did, as tracked
    HANDOFF_HISTORY = "handoff_history"  # handoff.handoff_history: decisions and notes
    WEBHOOK_DELIVERIES = "webhook_deliveries"  # <schema>.webhook_deliveries once finished
    DEAD_LETTERS = "dead_letters"  # <topic>.dlq on Kafka (retention.ms at creation)
    INBOX = "inbox"  # <schema>.inbox: message ids already processed
    EVENT_CONFLICTS = "event_conflicts"  # scoring.event_conflicts: reused event ids
    IDEMPOTENCY_KEYS = "idempotency_keys"  # handoff.idempotency_keys: first answers to replay


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each kind is kept; a kind mapped to None (or absent) is kept forever."""

    keep: Mapping[DataKind, timedelta | None]

    @classmethod
    def from_days(cls, days: Mapping[str, float | None]) -> RetentionPolicy:
        """From days by kind (`Settings.retention_days`); 0 or None keeps a kind forever."""
        return cls({DataKind(kind): keep_for(value) for kind, value in days.items()})

    def keep_of(self, kind: DataKind) -> timedelta | None:
        return self.keep.get(kind)

    def cutoff(self, kind: DataKind, now: datetime) -> datetime | None:
        """Rows of `kind` dated before this moment are due to go; None: nothing is ever due."""
        return cutoff(now, self.keep_of(kind))


def keep_for(days: float | None) -> timedelta | None:
    """A setting's days as a duration; 0 or None is "forever" (None)."""
    if days is None or days == 0:
        return None
    if days < 0:
        raise ValueError("a retention is 0 (forever) or a positive number of days")
    return timedelta(days=days)


def cutoff(now: datetime, keep: timedelta | None) -> datetime | None:
    """The moment before which data kept for `keep` is due at `now` (None: never)."""
    if now.tzinfo is None:
        raise ValueError("`now` must be timezone-aware")
    return None if keep is None else now - keep


def kafka_retention_ms(keep: timedelta | None) -> str:
    """`retention.ms` of a topic that keeps its records for `keep` (-1: forever)."""
    return "-1" if keep is None else str(int(keep.total_seconds() * 1000))


def redelivery_horizon(retention_ms: int | None, segment_ms: int | None) -> timedelta | None:
    """How old a record of a topic can be and still be read (so redelivered by a replay).

    None: unbounded (retention.ms -1 keeps records forever, or it is unknown).
    """
    if retention_ms is None or retention_ms < 0:
        return None
    return timedelta(milliseconds=retention_ms + max(segment_ms or 0, 0)) + REDELIVERY_MARGIN


def inbox_keep(configured: timedelta | None, horizons: Iterable[timedelta | None]) -> timedelta | None:
    """How long the inbox keeps message ids: as configured, but never less than the oldest
    record any topic it deduplicates could still deliver.

    The inbox is what makes a redelivery change nothing; an id forgotten while its record
    can still be read (a replay from the beginning of the topic) would be applied twice.
    So the inbox keeps ids for at least each topic's horizon; an unbounded horizon keeps
    them forever (None).
    """
    keep = configured
    for horizon in horizons:
        if horizon is None or keep is None:
            return None
        keep = max(keep, horizon)
    return keep


def another_batch(deleted: int, *, batch_rows: int, pruned: int, max_rows: int | None) -> bool:
    """After a batch that removed `deleted` rows (`pruned` so far this run), go on?

    A batch short of the limit means nothing more is due; `max_rows` bounds one run, so a
    large backlog is worked off over several runs rather than in one long stretch.
    """
    if deleted < batch_rows:
        return False
    return max_rows is None or pruned < max_rows


def lock_name(schema: str, kind: DataKind, table: str) -> str:
    """The name of the advisory lock one instance holds while it prunes this table."""
    return f"leadflow.retention:{schema}:{kind.value}:{table}"
