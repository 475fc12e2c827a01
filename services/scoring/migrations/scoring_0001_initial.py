"""scoring: leads, anonymous ids, event history, outbox and inbox.

Revision ID: scoring_0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from shared.migration_ops import create_outbox_and_inbox, drop_outbox_and_inbox

revision = "scoring_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    op.create_table(
        "leads",
        sa.Column("lead_id", sa.Text, primary_key=True),
        sa.Column("email", sa.Text, unique=True, nullable=True),
        sa.Column("stage", sa.Text, nullable=False, server_default="nurture"),
        sa.Column("cycle", sa.Integer, nullable=False, server_default="1"),
        sa.Column("score", sa.Integer, nullable=False, server_default="0"),
        sa.Column("fit_points", sa.Integer, nullable=False, server_default="0"),
        sa.Column("grade", sa.Text, nullable=False, server_default="D"),
        sa.Column("disqualified", sa.Text, nullable=True),
        sa.Column("explanation", JSONB, nullable=False, server_default="[]"),
        sa.Column("traits", JSONB, nullable=False, server_default="{}"),
        sa.Column("model_version", sa.Text, nullable=True),
        sa.Column("events_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("mql_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=schema,
    )
    op.create_index("ix_leads_stage_score", "leads", ["stage", "score"], schema=schema)
    op.create_table(
        "anonymous_ids",
        sa.Column("anonymous_id", sa.Text, primary_key=True),
        sa.Column(
            "lead_id", sa.Text, sa.ForeignKey(f"{schema}.leads.lead_id", ondelete="CASCADE"), nullable=False
        ),
        schema=schema,
    )
    op.create_table(
        "lead_events",
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column(
            "lead_id", sa.Text, sa.ForeignKey(f"{schema}.leads.lead_id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("properties", JSONB, nullable=False, server_default="{}"),
        schema=schema,
    )
    op.create_index("ix_lead_events_lead", "lead_events", ["lead_id", "occurred_at"], schema=schema)
    create_outbox_and_inbox(schema)


def downgrade(schema: str) -> None:
    drop_outbox_and_inbox(schema)
    op.drop_table("lead_events", schema=schema)
    op.drop_table("anonymous_ids", schema=schema)
    op.drop_table("leads", schema=schema)
