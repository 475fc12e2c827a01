"""scoring: each event's body digest, and the events that reused a stored event_id with another body.

Revision ID: scoring_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "scoring_0003"
down_revision = "scoring_0002"
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    op.add_column("lead_events", sa.Column("body_digest", sa.Text, nullable=True), schema=schema)
    op.create_table(
        "event_conflicts",
        sa.Column("seq", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("lead_id", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stored_digest", sa.Text, nullable=False),
        sa.Column("received_digest", sa.Text, nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("event_id", "received_digest", name="uq_event_conflicts_event_body"),
        schema=schema,
    )


def downgrade(schema: str) -> None:
    op.drop_table("event_conflicts", schema=schema)
    op.drop_column("lead_events", "body_digest", schema=schema)
