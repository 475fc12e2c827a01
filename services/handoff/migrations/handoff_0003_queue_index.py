"""handoff: index the queue's order (the deadline that applies now, then id).

Revision ID: handoff_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "handoff_0003"
down_revision = "handoff_0002"
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    op.create_index(
        "ix_handoffs_current_deadline",
        "handoffs",
        [sa.text("coalesce(qualify_by, decide_by)"), "handoff_id"],
        schema=schema,
    )


def downgrade(schema: str) -> None:
    op.drop_index("ix_handoffs_current_deadline", "handoffs", schema=schema)
