"""The failed-events view: Tracking API messages intake accepted but could not map (an event
name the tracking plan lacks, a message that breaks the contract), grouped by reason.

Intake keeps no tables of its own, so it publishes each one to `lead.events.failed` before its
202; feedback, which measures the pipeline, consumes them here (inbox: a redelivered message
counts once) and serves `GET /v1/failed-events` (scope `metrics:read`): per reason, message
type and event name, how many, when first and last seen, and the latest sample, which intake
redacted of identities, traits and email-like text.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import BigInteger, Column, DateTime, PrimaryKeyConstraint, Table, Text, case, func, select
from sqlalchemy.dialects.postgresql import JSONB, insert

from services.feedback.store import SCHEMA, metadata
from shared.auth import Principal, Scope, require
from shared.consumer import BatchHandler
from shared.envelope import Envelope
from shared.events import TrackingMessageFailed
from shared.runtime import ServiceRuntime
from shared.unit_of_work import UnitOfWork

failed_events = Table(
    "failed_events",
    metadata,
    Column("reason", Text, nullable=False),
    Column("message_type", Text, nullable=False),  # "" when the message named none
    Column("event", Text, nullable=False),  # a track call's event name, else ""
    Column("field", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("sample", JSONB, nullable=False),
    PrimaryKeyConstraint("reason", "message_type", "event"),
    schema=SCHEMA,
)
router = APIRouter(prefix="/v1", tags=["tracking"])
Reader = Annotated[Principal, require(Scope.METRICS_READ)]


class FailedEventGroup(BaseModel):
    reason: str = Field(description="The rule broken, e.g. unmapped_event, identity_required.")
    message_type: str | None
    event: str | None = Field(description="A track call's event name.")
    field: str
    detail: str
    count: int
    first_seen: datetime
    last_seen: datetime
    sample: dict[str, Any] = Field(description="The latest such message, personal fields redacted.")


class FailedEvents(BaseModel):
    items: list[FailedEventGroup]


def batch_handlers() -> Mapping[str, BatchHandler]:
    return {TrackingMessageFailed.event_type: record_failed}


async def record_failed(uow: UnitOfWork, items: list[tuple[Envelope, Any]]) -> None:
    """Count each failed message into its group; the latest one is the group's sample."""
    for _, failed in items:
        assert isinstance(failed, TrackingMessageFailed)
        row = {
            "reason": failed.reason,
            "message_type": failed.message_type or "",
            "event": failed.event or "",
            "field": failed.field,
            "detail": failed.detail,
            "count": 1,
            "first_seen": failed.received_at,
            "last_seen": failed.received_at,
            "sample": failed.sample,
        }
        statement = insert(failed_events).values(**row)
        newer = statement.excluded.last_seen >= failed_events.c.last_seen
        await uow.conn.execute(
            statement.on_conflict_do_update(
                index_elements=["reason", "message_type", "event"],
                set_={
                    "count": failed_events.c.count + 1,
                    "first_seen": func.least(failed_events.c.first_seen, statement.excluded.first_seen),
                    "last_seen": func.greatest(failed_events.c.last_seen, statement.excluded.last_seen),
                    "sample": _latest(newer, statement.excluded.sample, failed_events.c.sample),
                    "field": _latest(newer, statement.excluded.field, failed_events.c.field),
                    "detail": _latest(newer, statement.excluded.detail, failed_events.c.detail),
                },
            )
        )


def _latest(newer: Any, new: Any, old: Any) -> Any:
    return case((newer, new), else_=old)


@router.get("/failed-events", response_model=FailedEvents)
async def list_failed_events(
    request: Request,
    _: Reader,
    reason: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> FailedEvents:
    """Tracking API messages accepted but not scored, by reason, most recently seen first."""
    query = select(failed_events).order_by(failed_events.c.last_seen.desc()).limit(limit)
    if reason is not None:
        query = query.where(failed_events.c.reason == reason)
    runtime: ServiceRuntime = request.app.state.runtime
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return FailedEvents(
        items=[
            FailedEventGroup(
                **{**row, "message_type": row["message_type"] or None, "event": row["event"] or None}
            )
            for row in rows
        ]
    )
