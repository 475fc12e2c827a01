"""handoff: SLA timers, idempotency keys, webhooks, routing turns, team of each handoff.

Revision ID: handoff_0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "handoff_0002"
down_revision = "handoff_0001"
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    op.add_column("handoffs", sa.Column("team", sa.Text, nullable=True), schema=schema)
    op.create_index("ix_handoffs_owner_decide_by", "handoffs", ["owner", "decide_by"], schema=schema)
    op.create_table(
        "sla_timers",
        sa.Column("timer_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("handoff_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("stage", sa.Text, nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("handoff_id", "kind", "stage", name="uq_sla_timers_once"),
        schema=schema,
    )
    op.create_index(
        "ix_sla_timers_pending",
        "sla_timers",
        ["due_at"],
        schema=schema,
        postgresql_where=sa.text("fired_at IS NULL AND cancelled_at IS NULL"),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("principal", sa.Text, primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("body", postgresql.JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=schema,
    )
    op.create_table(
        "webhook_subscriptions",
        sa.Column("subscription_id", sa.Text, primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("event_types", postgresql.ARRAY(sa.Text), nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=schema,
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("delivery_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("subscription_id", sa.Text, nullable=False),
        sa.Column("message_id", sa.Text, nullable=False),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column(
            "next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("last_status_code", sa.Integer, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("subscription_id", "message_id", name="uq_webhook_deliveries_once"),
        schema=schema,
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        schema=schema,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "routing_turns",
        sa.Column("team", sa.Text, primary_key=True),
        sa.Column("turn", sa.BigInteger, nullable=False, server_default="0"),
        schema=schema,
    )


def downgrade(schema: str) -> None:
    for table in (
        "routing_turns",
        "webhook_deliveries",
        "webhook_subscriptions",
        "idempotency_keys",
        "sla_timers",
    ):
        op.drop_table(table, schema=schema)
    op.drop_index("ix_handoffs_owner_decide_by", "handoffs", schema=schema)
    op.drop_column("handoffs", "team", schema=schema)
