"""Public (browser) write keys: a flag, and the origins such a key is accepted from.

Revision ID: auth_0003_tracking
"""

import sqlalchemy as sa
from alembic import op

revision = "auth_0003_tracking"
down_revision = "auth_0002"
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    op.add_column(
        "api_keys", sa.Column("public", sa.Boolean, nullable=False, server_default=sa.false()), schema=schema
    )
    op.add_column("api_keys", sa.Column("allowed_origins", sa.ARRAY(sa.Text), nullable=True), schema=schema)


def downgrade(schema: str) -> None:
    for column in ("allowed_origins", "public"):
        op.drop_column("api_keys", column, schema=schema)
