"""The shapes of scoring's HTTP answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from services.scoring.accounts.schemas import LeadAccount
from shared.events import ScoreContribution


class LeadPublic(BaseModel):
    lead_id: str
    email: str | None
    stage: str
    cycle: int
    score: int
    fit_points: int
    grade: str
    disqualified: str | None = Field(description="The disqualifying rule and why, if any.")
    model_version: str | None
    explanation: list[ScoreContribution] = Field(description="Every rule that contributed, largest first.")
    traits: dict[str, Any]
    events_count: int
    mql_at: datetime | None
    updated_at: datetime
    account: LeadAccount | None = Field(default=None, description="Its account (on a single lead's read).")
    score_as_of: datetime | None = Field(
        default=None,
        description="When score and explanation are true: now for one lead; null in lists (stored scores).",
    )


class LeadPage(BaseModel):
    items: list[LeadPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class TimelineEntry(BaseModel):
    at: datetime
    kind: Literal["event", "score"]
    event_type: str | None = None
    event_id: str | None = None
    properties: dict[str, Any] | None = None
    score: int | None = None
    grade: str | None = None
    stage: str | None = None
    model_version: str | None = None
    cause: str | None = None


class ActiveModel(BaseModel):
    version: str
    model: dict[str, Any]


class EventConflict(BaseModel):
    """An event that reused a stored event_id with another body; the stored (first) body was kept."""

    seq: int
    event_id: str
    lead_id: str = Field(description="The lead the conflicting event was about.")
    type: str
    occurred_at: datetime
    stored_digest: str = Field(description="SHA-256 of the body kept (see LeadEventAccepted.body_digest).")
    received_digest: str = Field(description="SHA-256 of the body refused.")
    seen_at: datetime


class ConflictPage(BaseModel):
    items: list[EventConflict]
    next_before: int | None = Field(
        description="Pass as `before` for the next (older) page; null on the last."
    )
