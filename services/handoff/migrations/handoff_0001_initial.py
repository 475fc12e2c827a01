"""handoff: handoffs, their history, outbox and inbox.

Revision ID: handoff_0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from shared.migration_ops import create_outbox_and_inbox, drop_outbox_and_inbox

revision = "handoff_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    op.create_table(
        "handoffs",
        sa.Column("handoff_id", sa.Text, primary_key=True),
        sa.Column("lead_id", sa.Text, nullable=False),
        sa.Column("cycle", sa.Integer, nullable=False),
        sa.Column("stage", sa.Text, nullable=False),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("policy", sa.Text, nullable=False),
        sa.Column("decide_by", sa.DateTime(timezone=True), nullable=False),
        sa.Column("qualify_by", sa.DateTime(timezone=True), nullable=True),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("grade", sa.Text, nullable=False),
        sa.Column("explanation", JSONB, nullable=False),
        sa.Column("lead", JSONB, nullable=False),
        sa.Column("channel", sa.Text, nullable=True),
        sa.Column("campaign", sa.Text, nullable=True),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("lead_id", "cycle", name="uq_handoffs_lead_cycle"),
        schema=schema,
    )
    op.create_index("ix_handoffs_stage_decide_by", "handoffs", ["stage", "decide_by"], schema=schema)
    op.create_table(
        "handoff_history",
        sa.Column("seq", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("handoff_id", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("from_stage", sa.Text, nullable=True),
        sa.Column("to_stage", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        schema=schema,
    )
    op.create_index("ix_handoff_history_handoff_id", "handoff_history", ["handoff_id"], schema=schema)
    create_outbox_and_inbox(schema)


def downgrade(schema: str) -> None:
    drop_outbox_and_inbox(schema)
    op.drop_table("handoff_history", schema=schema)
    op.drop_table("handoffs", schema=schema)
