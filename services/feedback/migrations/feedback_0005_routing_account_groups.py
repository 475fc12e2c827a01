"""feedback: each handoff's account tier and whether it had an account, for return rates and the
funnel grouped by them. Facts of handoffs made before accounts keep null (unknown) until a rebuild.

Revision ID: feedback_0005_routing
"""

import sqlalchemy as sa
from alembic import op

revision = "feedback_0005_routing"
down_revision = "feedback_0004_tracking"
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    op.add_column("handoff_facts", sa.Column("account_tier", sa.Text, nullable=True), schema=schema)
    op.add_column("handoff_facts", sa.Column("account_matched", sa.Boolean, nullable=True), schema=schema)


def downgrade(schema: str) -> None:
    op.drop_column("handoff_facts", "account_matched", schema=schema)
    op.drop_column("handoff_facts", "account_tier", schema=schema)
