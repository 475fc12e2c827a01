"""feedback: how opportunities closed (won with its amount, or lost with its reason),
whether a handoff was an exploration handoff, and its likelihood under the predictive model.

Revision ID: feedback_0006_learning
"""

import sqlalchemy as sa
from alembic import op

revision = "feedback_0006_learning"
down_revision = "feedback_0005_routing"
branch_labels = None
depends_on = None

COLUMNS = (
    ("won_at", sa.DateTime(timezone=True)),
    ("lost_at", sa.DateTime(timezone=True)),
    ("amount", sa.Numeric(17, 2)),
    ("currency", sa.Text),
    ("lost_reason", sa.Text),
    ("exploration", sa.Boolean),
    ("likelihood", sa.Integer),
)


def upgrade(schema: str) -> None:
    for name, kind in COLUMNS:
        op.add_column("handoff_facts", sa.Column(name, kind, nullable=True), schema=schema)


def downgrade(schema: str) -> None:
    for name, _ in COLUMNS:
        op.drop_column("handoff_facts", name, schema=schema)
