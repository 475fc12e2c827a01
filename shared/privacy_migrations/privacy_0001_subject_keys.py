"""The key vault: one data key per person-subject; a destroyed key is the suppression list.

Revision ID: privacy_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "privacy_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    op.create_table(
        "subject_keys",
        sa.Column("subject", sa.Text, primary_key=True),
        sa.Column("sealed_key", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("destroyed_at", sa.DateTime(timezone=True), nullable=True),
        schema=schema,
    )
    op.create_index(
        "ix_subject_keys_destroyed",
        "subject_keys",
        ["destroyed_at"],
        schema=schema,
        postgresql_where=sa.text("destroyed_at IS NOT NULL"),
    )


def downgrade(schema: str) -> None:
    op.drop_table("subject_keys", schema=schema)
