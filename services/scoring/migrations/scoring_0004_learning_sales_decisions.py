"""scoring: every sales decision on a lead's handoffs, kept for training (`leadflow model train`).

Revision ID: scoring_0004
"""

import sqlalchemy as sa
from alembic import op

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


def downgrade(schema: str) -> None:
    op.drop_table("sales_decisions", schema=schema)
