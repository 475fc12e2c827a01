"""The handoff API's request and response shapes, shared by the service and its Python client."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from shared.events import (
    AccountContext,
    HandoffClaimed,
    HandoffCreated,
    HandoffReassigned,
    LeadDisqualified,
    LeadRejected,
    LeadReturned,
    SalAccepted,
    ScoreContribution,
    SlaBreached,
    SlaWarning,
    SqlQualified,
    SqoCreated,
)
from shared.request_rules import Instant

# The webhook shapes are every service's; the client imports them from here.
from shared.webhook_api import DeliveryPublic as DeliveryPublic
from shared.webhook_api import WebhookCreated as WebhookCreated
from shared.webhook_api import WebhookPublic as WebhookPublic

# What a sales tool can subscribe to: every event about a handoff.
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
        HandoffClaimed,
        SlaWarning,
        SlaBreached,
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
    account: AccountContext | None = Field(
        default=None, description="The lead's account at MQL time: name, owner, tier, score, how matched."
    )
    routing_reason: str | None = Field(
        default=None, description="Why its owner has it: account_owner, round_robin, ooo_backup, claimed, ..."
    )
    routing_rule: str | None = Field(default=None, description="The routing rule that assigned it, if any.")


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


class ClaimBody(BaseModel):
    rep: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Who claims it; a rep's own key claims for its rep, managers may name one.",
    )


class OutOfOfficeWindow(BaseModel):
    start: Instant = Field(description="Away from this instant (with an offset).")
    end: Instant = Field(description="Back at this instant; after `start`.")
    backup: str | None = Field(
        default=None, min_length=1, max_length=200, description="Takes the rep's account handoffs meanwhile."
    )


class AvailabilityBody(BaseModel):
    out_of_office: list[OutOfOfficeWindow] = Field(
        max_length=50, description="Replaces the windows set over the API; [] clears them."
    )


class RepAvailability(BaseModel):
    rep: str
    away_now: bool
    back_at: datetime | None = Field(description="When the current window ends, if away now.")
    out_of_office: list[OutOfOfficeWindow] = Field(description="Set over the API, not yet over.")
    configured: list[OutOfOfficeWindow] = Field(description="From the routing file.")


class RepPublic(BaseModel):
    rep: str
    teams: list[str]
    weight: int
    capacity: int | None
    open_handoffs: int
    away_now: bool
