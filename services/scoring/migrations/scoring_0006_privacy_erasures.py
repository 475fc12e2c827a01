"""scoring: erasure requests and each service's confirmations; which leads merged into which.

Revision ID: scoring_0006_privacy
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "scoring_0006_privacy"
down_revision = "scoring_0005_accounts"
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    op.create_table(
        "erasures",
        sa.Column("request_id", sa.Text, primary_key=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("requested_by", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=True),
        sa.Column("lead_ids", postgresql.ARRAY(sa.Text), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        schema=schema,
    )
    op.create_table(
        "erasure_confirmations",
        sa.Column("request_id", sa.Text, primary_key=True),
        sa.Column("service", sa.Text, primary_key=True),
        sa.Column("lead_id", sa.Text, primary_key=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=schema,
    )
    op.create_table(
        "lead_merges",
        sa.Column("absorbed", sa.Text, primary_key=True),
        sa.Column("into", sa.Text, nullable=False),
        sa.Column("merged_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=schema,
    )
    op.create_index("ix_lead_merges_into", "lead_merges", ["into"], schema=schema)
    op.create_index("ix_event_conflicts_lead", "event_conflicts", ["lead_id"], schema=schema)


def downgrade(schema: str) -> None:
    op.drop_index("ix_event_conflicts_lead", "event_conflicts", schema=schema)
    op.drop_table("lead_merges", schema=schema)
    op.drop_table("erasure_confirmations", schema=schema)
    op.drop_table("erasures", schema=schema)
