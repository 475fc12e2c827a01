"""feedback: the failed-events view of Tracking API messages intake could not map.

Revision ID: feedback_0004_tracking
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "feedback_0004_tracking"
down_revision = "feedback_0003"
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    op.create_table(
        "failed_events",
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("message_type", sa.Text, nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("field", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sample", JSONB, nullable=False),
        sa.PrimaryKeyConstraint("reason", "message_type", "event"),
        schema=schema,
    )
    op.create_index("ix_failed_events_last_seen", "failed_events", ["last_seen"], schema=schema)


def downgrade(schema: str) -> None:
    op.drop_table("failed_events", schema=schema)
