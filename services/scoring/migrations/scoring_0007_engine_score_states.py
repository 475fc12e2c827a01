"""scoring: each lead's running score state, and when its decaying score is next due a look.

Revision ID: scoring_0007_engine
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "scoring_0007_engine"
down_revision = "scoring_0006_privacy"
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    op.create_table(
        "lead_score_states",
        sa.Column(
            "lead_id",
            sa.Text,
            sa.ForeignKey(f"{schema}.leads.lead_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("model_key", sa.Text, nullable=False),
        sa.Column("state", JSONB, nullable=False),
        sa.Column("decay_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=schema,
    )
    op.create_index(
        "ix_lead_score_states_due",
        "lead_score_states",
        ["decay_due_at"],
        schema=schema,
        postgresql_where=sa.text("decay_due_at IS NOT NULL"),
    )


def downgrade(schema: str) -> None:
    op.drop_table("lead_score_states", schema=schema)
