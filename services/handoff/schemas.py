"""The handoff API's request and response shapes, shared by the service and its Python client."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from shared.events import (
    HandoffCreated,
    HandoffReassigned,
    LeadDisqualified,
    LeadErased,
    LeadRejected,
    LeadReturned,
    SalAccepted,
    ScoreContribution,
    SlaBreached,
    SlaWarning,
    SqlQualified,
    SqoCreated,
)

# The webhook shapes are every service's; the client imports them from here.
from shared.webhook_api import DeliveryPublic as DeliveryPublic
from shared.webhook_api import WebhookCreated as WebhookCreated
from shared.webhook_api import WebhookPublic as WebhookPublic

# What a sales tool can subscribe to: every event about a handoff, and `lead.erased` (which every
# subscriber gets anyway: services/handoff/webhooks.py).
WEBHOOK_EVENT_TYPES: tuple[str, ...] = tuple(
    model.event_type
    for model in (
        HandoffCreated,
        SalAccepted,
        LeadRejected,
        LeadReturned,
        SqlQualified,
        SqoCreated,
        LeadDisqualified,
        HandoffReassigned,
        SlaWarning,
        SlaBreached,
        LeadErased,
    )
)


class HandoffPublic(BaseModel):
    handoff_id: str
    lead_id: str
    cycle: int
    stage: str
    owner: str
    team: str | None
    policy: str
    decide_by: datetime
    qualify_by: datetime | None
    score: int
    grade: str
    explanation: list[ScoreContribution] = Field(description="Why the lead qualified.")
    lead: dict[str, Any] = Field(description="Email and profile traits at MQL time.")
    channel: str | None
    campaign: str | None
    version: int = Field(description="Changes with every action; sent as the ETag.")
    allowed_actions: list[str]
    created_at: datetime
    updated_at: datetime


class HandoffPage(BaseModel):
    items: list[HandoffPublic]
    next_cursor: str | None


class DecisionBody(BaseModel):
    reason: str | None = Field(
        default=None, max_length=200, description="Required to reject, return or disqualify."
    )
    note: str | None = Field(default=None, max_length=2000, description="Required when reason is `other`.")
    details: dict[str, Any] = Field(default_factory=dict, description="BANT or opportunity fields.")


class ReassignBody(BaseModel):
    owner: str = Field(min_length=1, max_length=200, description="A rep or a queue.")
    reason: str | None = Field(default=None, max_length=500)


class HistoryEntry(BaseModel):
    at: datetime
    actor: str
    action: str
    from_stage: str | None
    to_stage: str
    reason: str | None
    note: str | None
