"""The account tables of scoring's schema (on scoring's metadata, migrated with it)."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Float, ForeignKey, Index, Integer, Table, Text, func
from sqlalchemy.dialects.postgresql import JSONB

from services.scoring.store import SCHEMA, metadata

accounts = Table(
    "accounts",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column(
        "external_id", Text, unique=True, nullable=True, comment="the CRM's id; imports are idempotent by it"
    ),
    Column("name", Text, nullable=False),
    Column("name_normalized", Text, nullable=True, comment="the name-map key: legal suffixes removed"),
    Column("name_block", Text, nullable=True, comment="the fuzzy candidates' blocking key"),
    Column("domains", JSONB, nullable=False, server_default="[]"),
    Column("owner", Text, nullable=True),
    Column("tier", Text, nullable=True),
    Column("industry", Text, nullable=True),
    Column("size", Integer, nullable=True),
    Column("country", Text, nullable=True),
    Column("source", Text, nullable=False, comment="import | api | auto"),
    # The roll-up, moved by each member's change (services/scoring/accounts/account_score.py).
    Column("engagement", Float, nullable=False, server_default="0"),
    Column("engagement_at", DateTime(timezone=True), nullable=True),
    Column("members", Integer, nullable=False, server_default="0"),
    Column("engaged_people", Integer, nullable=False, server_default="0"),
    Column("departments", JSONB, nullable=False, server_default="{}"),
    Column("seniorities", JSONB, nullable=False, server_default="{}"),
    Column("score", Integer, nullable=False, server_default="0"),
    Column("fit_points", Integer, nullable=False, server_default="0"),
    Column("grade", Text, nullable=False, server_default="D"),
    Column("mqa", Boolean, nullable=False, server_default="false"),
    Column("mqa_at", DateTime(timezone=True), nullable=True),
    Column("explanation", JSONB, nullable=False, server_default="[]"),
    Column("model_version", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_accounts_name_normalized", "name_normalized"),
    Index("ix_accounts_name_block", "name_block"),
    Index("ix_accounts_score", "score"),
    schema=SCHEMA,
)

# The domain map: each registrable domain belongs to one account.
account_domains = Table(
    "account_domains",
    metadata,
    Column("domain", Text, primary_key=True),
    Column(
        "account_id", Text, ForeignKey(f"{SCHEMA}.accounts.account_id", ondelete="CASCADE"), nullable=False
    ),
    Index("ix_account_domains_account", "account_id"),
    schema=SCHEMA,
)

# Each lead's account and what it brings to it (no personal data: a department and a seniority band).
account_members = Table(
    "account_members",
    metadata,
    Column("lead_id", Text, ForeignKey(f"{SCHEMA}.leads.lead_id", ondelete="CASCADE"), primary_key=True),
    Column(
        "account_id", Text, ForeignKey(f"{SCHEMA}.accounts.account_id", ondelete="CASCADE"), nullable=True
    ),
    Column("matched_by", Text, nullable=True),
    Column("confidence", Float, nullable=False, server_default="0"),
    Column("evidence", Text, nullable=True),
    Column("facts_digest", Text, nullable=False, comment="re-matched only when the lead's facts change"),
    Column("engagement", Float, nullable=False, server_default="0"),
    Column("as_of", DateTime(timezone=True), nullable=True),
    Column("engaged", Boolean, nullable=False, server_default="false"),
    Column("department", Text, nullable=True),
    Column("seniority", Text, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_account_members_account", "account_id"),
    schema=SCHEMA,
)
