"""Migration steps service schemas share: the outbox and inbox, and webhook tables."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql


def create_outbox_and_inbox(schema: str) -> None:
    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("message_id", sa.Text, nullable=False, unique=True),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("key", sa.LargeBinary, nullable=True),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=schema,
    )
    op.create_table(
        "inbox",
        sa.Column("message_id", sa.Text, primary_key=True),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=schema,
    )
    op.create_index(f"ix_{schema}_inbox_processed_at", "inbox", ["processed_at"], schema=schema)


def drop_outbox_and_inbox(schema: str) -> None:
    op.drop_table("inbox", schema=schema)
    op.drop_table("outbox", schema=schema)


def create_webhook_tables(schema: str) -> None:
    """The webhook tables as they were first made; `add_webhook_lifecycle` brings them to what
    `shared.webhooks.webhook_tables` defines."""
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


def drop_webhook_tables(schema: str) -> None:
    op.drop_table("webhook_deliveries", schema=schema)
    op.drop_table("webhook_subscriptions", schema=schema)


def add_webhook_lifecycle(schema: str) -> None:
    """Who made each subscription (for the cap per key), the previous secret during a rotation,
    an index for a subscription's deliveries, and answer bodies stored before no longer kept:
    each `last_error` becomes a short summary (existing secrets are sealed by the delivery loop,
    which has the key)."""
    for column in (
        sa.Column("created_by", sa.Text, nullable=True),
        sa.Column("previous_secret", sa.Text, nullable=True),
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
    ):
        op.add_column("webhook_subscriptions", column, schema=schema)
    op.create_index(
        "ix_webhook_deliveries_subscription",
        "webhook_deliveries",
        ["subscription_id", "delivery_id"],
        schema=schema,
    )
    op.execute(
        f"UPDATE {schema}.webhook_deliveries SET last_error = CASE WHEN last_status_code IS NOT NULL "
        "THEN 'HTTP ' || last_status_code ELSE 'transport error' END WHERE last_error IS NOT NULL"
    )


def drop_webhook_lifecycle(schema: str) -> None:
    op.drop_index("ix_webhook_deliveries_subscription", "webhook_deliveries", schema=schema)
    for column in ("previous_secret_expires_at", "previous_secret", "created_by"):
        op.drop_column("webhook_subscriptions", column, schema=schema)
