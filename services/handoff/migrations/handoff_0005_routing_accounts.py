"""handoff: the lead's account and the routing reason on each handoff, reps' out-of-office
windows set over the API, and an index counting each rep's open handoffs.

Revision ID: handoff_0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "handoff_0005"
down_revision = "handoff_0004"
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    op.add_column("handoffs", sa.Column("account", postgresql.JSONB, nullable=True), schema=schema)
    op.add_column("handoffs", sa.Column("routing_reason", sa.Text, nullable=True), schema=schema)
    op.add_column("handoffs", sa.Column("routing_rule", sa.Text, nullable=True), schema=schema)
    op.create_index(
        "ix_handoffs_open_by_owner",
        "handoffs",
        ["owner"],
        schema=schema,
        postgresql_where=sa.text("stage IN ('mql', 'sal', 'sql')"),
    )
    op.create_table(
        "rep_availability",
        sa.Column("rep", sa.Text, nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("backup", sa.Text, nullable=True),
        sa.Column("set_by", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("rep", "window_start", name="pk_rep_availability"),
        schema=schema,
    )
    op.create_index("ix_rep_availability_end", "rep_availability", ["window_end"], schema=schema)


def downgrade(schema: str) -> None:
    op.drop_table("rep_availability", schema=schema)
    op.drop_index("ix_handoffs_open_by_owner", "handoffs", schema=schema)
    for column in ("routing_rule", "routing_reason", "account"):
        op.drop_column("handoffs", column, schema=schema)
