"""feedback: handoff facts, alerts, outbox and inbox.

Revision ID: feedback_0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from shared.migration_ops import create_outbox_and_inbox, drop_outbox_and_inbox

revision = "feedback_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    op.create_table(
        "handoff_facts",
        sa.Column("handoff_id", sa.Text, primary_key=True),
        sa.Column("lead_id", sa.Text, nullable=False),
        sa.Column("cycle", sa.Integer),
        sa.Column("owner", sa.Text),
        sa.Column("policy", sa.Text),
        sa.Column("channel", sa.Text),
        sa.Column("campaign", sa.Text),
        sa.Column("grade", sa.Text),
        sa.Column("score", sa.Integer),
        sa.Column("handed_off_at", sa.DateTime(timezone=True)),
        sa.Column("decision", sa.Text),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("decided_in_time", sa.Boolean),
        sa.Column("sent_back", sa.Text),
        sa.Column("sent_back_at", sa.DateTime(timezone=True)),
        sa.Column("reason", sa.Text),
        sa.Column("sql_at", sa.DateTime(timezone=True)),
        sa.Column("sqo_at", sa.DateTime(timezone=True)),
        sa.Column("disqualified_at", sa.DateTime(timezone=True)),
        schema=schema,
    )
    op.create_index("ix_handoff_facts_decided_at", "handoff_facts", ["decided_at"], schema=schema)
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.Text, primary_key=True),
        sa.Column("alert_key", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("severity", sa.Text),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("figures", JSONB, nullable=False),
        schema=schema,
    )
    op.create_index(
        "uq_alerts_one_open_per_key",
        "alerts",
        ["alert_key"],
        unique=True,
        schema=schema,
        postgresql_where=sa.text("status = 'open'"),
    )
    create_outbox_and_inbox(schema)


def downgrade(schema: str) -> None:
    drop_outbox_and_inbox(schema)
    op.drop_table("alerts", schema=schema)
    op.drop_table("handoff_facts", schema=schema)
