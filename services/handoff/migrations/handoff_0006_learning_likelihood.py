"""handoff: each handoff's likelihood under the predictive model (with its top factors), and
whether it is an exploration handoff.

Revision ID: handoff_0006_learning
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "handoff_0006_learning"
down_revision = "handoff_0005"
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    op.add_column("handoffs", sa.Column("likelihood", postgresql.JSONB, nullable=True), schema=schema)
    op.add_column(
        "handoffs",
        sa.Column("exploration", sa.Boolean, nullable=False, server_default=sa.false()),
        schema=schema,
    )


def downgrade(schema: str) -> None:
    op.drop_column("handoffs", "exploration", schema=schema)
    op.drop_column("handoffs", "likelihood", schema=schema)
