"""scoring: every sales decision on a lead's handoffs, kept for training (`leadflow model train`),
and the trained predictive models, one of them active.

Revision ID: scoring_0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "scoring_0004"
down_revision = "scoring_0003"
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    op.create_table(
        "sales_decisions",
        sa.Column("message_id", sa.Text, primary_key=True),
        sa.Column("lead_id", sa.Text, nullable=False),
        sa.Column("cycle", sa.Integer, nullable=False),
        sa.Column("handoff_id", sa.Text, nullable=False),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("exploration", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("propensity", sa.Float, nullable=True),
        schema=schema,
    )
    op.create_index("ix_sales_decisions_lead", "sales_decisions", ["lead_id", "cycle", "at"], schema=schema)
    op.create_table(
        "predictive_models",
        sa.Column("version", sa.Text, primary_key=True),
        sa.Column("digest", sa.Text, nullable=False),
        sa.Column("trained_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("window_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_to", sa.DateTime(timezone=True), nullable=False),
        sa.Column("holdout_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("features", postgresql.JSONB, nullable=False),
        sa.Column("calibration", postgresql.JSONB, nullable=False),
        sa.Column("metrics", postgresql.JSONB, nullable=False),
        sa.Column("booster", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        schema=schema,
    )
    op.create_index(
        "uq_predictive_models_one_active",
        "predictive_models",
        ["active"],
        unique=True,
        schema=schema,
        postgresql_where=sa.text("active"),
    )


def downgrade(schema: str) -> None:
    op.drop_table("predictive_models", schema=schema)
    op.drop_table("sales_decisions", schema=schema)
