"""The shapes of the accounts API's answers (the PUT body is imports.AccountRecord)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from shared.events import ScoreContribution


class AccountPublic(BaseModel):
    account_id: str
    external_id: str | None
    name: str
    domains: list[str]
    owner: str | None
    tier: str | None
    industry: str | None
    size: int | None
    country: str | None
    source: str = Field(description="import | api | auto (started by a corporate email domain)")
    score: int = Field(description="Engagement roll-up of the members plus buying-group coverage.")
    fit_points: int
    grade: str
    mqa: bool = Field(description="Whether the account meets the model's MQA rule.")
    mqa_at: datetime | None
    members: int
    engaged_people: int
    explanation: list[ScoreContribution]
    model_version: str | None
    created_at: datetime
    updated_at: datetime


class AccountMember(BaseModel):
    lead_id: str
    score: int
    grade: str
    stage: str
    matched_by: str | None = Field(
        description="domain, name_exact, name_exact+country, name_close+country, ..."
    )
    confidence: float
    evidence: str | None = Field(description="What matched (domains and company names only).")
    engaged: bool
    engagement: float = Field(description="Its capped engagement points toward the account.")
    department: str | None
    seniority: str | None


class AccountDetail(AccountPublic):
    members_list: list[AccountMember] = Field(description="Members, highest score first (at most 500).")


class AccountPage(BaseModel):
    items: list[AccountPublic]
    next_cursor: str | None


class LeadAccount(BaseModel):
    """The account a lead is matched to, on `GET /v1/leads/{id}`."""

    account_id: str
    name: str
    owner: str | None
    tier: str | None
    score: int
    grade: str
    engaged_people: int
    mqa: bool
    matched_by: str | None
    confidence: float
    evidence: str | None
