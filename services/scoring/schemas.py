"""The shapes of scoring's HTTP answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

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
