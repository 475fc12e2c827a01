"""API keys' lifecycle: expiry, the change time instances poll to drop revoked keys from their
caches, and the key a rotation replaced a key with.

Revision ID: auth_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "auth_0002"
down_revision = "auth_0001"
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    for column in (
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rotated_to", sa.Text, nullable=True),
    ):
        op.add_column("api_keys", column, schema=schema)
    op.execute(f"UPDATE {schema}.api_keys SET changed_at = revoked_at WHERE revoked_at IS NOT NULL")
    op.create_index(
        "ix_api_keys_changed_at",
        "api_keys",
        ["changed_at"],
        schema=schema,
        postgresql_where=sa.text("changed_at IS NOT NULL"),
    )


def downgrade(schema: str) -> None:
    op.drop_index("ix_api_keys_changed_at", "api_keys", schema=schema)
    for column in ("rotated_to", "changed_at", "expires_at"):
        op.drop_column("api_keys", column, schema=schema)
