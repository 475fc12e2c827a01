"""scoring: score history, handoff outcomes (for backtests), recycle time (for the cool-off).

Revision ID: scoring_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "scoring_0002"
down_revision = "scoring_0001"
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    op.add_column("leads", sa.Column("recycled_at", sa.DateTime(timezone=True), nullable=True), schema=schema)
    op.create_table(
        "score_changes",
        sa.Column("seq", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("lead_id", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("fit_points", sa.Integer, nullable=False),
        sa.Column("grade", sa.Text, nullable=False),
        sa.Column("stage", sa.Text, nullable=False),
        sa.Column("model_version", sa.Text, nullable=False),
        sa.Column("cause", sa.Text, nullable=False),
        schema=schema,
    )
    op.create_index("ix_score_changes_lead", "score_changes", ["lead_id", "seq"], schema=schema)
    op.create_table(
        "handoff_outcomes",
        sa.Column("lead_id", sa.Text, primary_key=True),
        sa.Column("cycle", sa.Integer, primary_key=True),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        schema=schema,
    )
    op.create_index("ix_leads_score_id", "leads", [sa.text("score DESC"), "lead_id"], schema=schema)


def downgrade(schema: str) -> None:
    op.drop_index("ix_leads_score_id", "leads", schema=schema)
    op.drop_table("handoff_outcomes", schema=schema)
    op.drop_table("score_changes", schema=schema)
    op.drop_column("leads", "recycled_at", schema=schema)
