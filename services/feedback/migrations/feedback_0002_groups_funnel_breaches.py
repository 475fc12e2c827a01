"""feedback: what return rates are grouped by, the funnel's cohort, scoring rules per handoff,
SLA breaches, and the alert webhooks (subscriptions and deliveries).

Revision ID: feedback_0002
"""

import sqlalchemy as sa
from alembic import op

from shared.migration_ops import create_webhook_tables, drop_webhook_tables

revision = "feedback_0002"
down_revision = "feedback_0001"
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    op.add_column("handoff_facts", sa.Column("team", sa.Text), schema=schema)
    op.add_column("handoff_facts", sa.Column("source", sa.Text), schema=schema)
    op.add_column(
        "handoff_facts",
        sa.Column("mql_at", sa.DateTime(timezone=True), comment="the cohort: when it became MQL"),
        schema=schema,
    )
    op.execute(f"UPDATE {schema}.handoff_facts SET mql_at = handed_off_at WHERE mql_at IS NULL")
    op.create_index("ix_handoff_facts_mql_at", "handoff_facts", ["mql_at"], schema=schema)
    op.create_table(
        "fact_rules",
        sa.Column("handoff_id", sa.Text, nullable=False),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("points", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("handoff_id", "rule", name="pk_fact_rules"),
        schema=schema,
    )
    op.create_table(
        "sla_breaches",
        sa.Column("handoff_id", sa.Text, nullable=False),
        sa.Column("stage", sa.Text, nullable=False),
        sa.Column("policy", sa.Text),
        sa.Column("owner", sa.Text),
        sa.Column("team", sa.Text),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("breached_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("handoff_id", "stage", name="pk_sla_breaches"),
        schema=schema,
    )
    op.create_index("ix_sla_breaches_breached_at", "sla_breaches", ["breached_at"], schema=schema)
    create_webhook_tables(schema)


def downgrade(schema: str) -> None:
    drop_webhook_tables(schema)
    op.drop_table("sla_breaches", schema=schema)
    op.drop_table("fact_rules", schema=schema)
    op.drop_index("ix_handoff_facts_mql_at", "handoff_facts", schema=schema)
    for name in ("mql_at", "source", "team"):
        op.drop_column("handoff_facts", name, schema=schema)
