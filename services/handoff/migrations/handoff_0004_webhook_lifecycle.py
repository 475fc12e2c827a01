"""handoff: webhook lifecycle and safety: creator, previous secret, deliveries by subscription, no bodies.

Revision ID: handoff_0004
"""

from shared.migration_ops import add_webhook_lifecycle, drop_webhook_lifecycle

revision = "handoff_0004"
down_revision = "handoff_0003"
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    add_webhook_lifecycle(schema)


def downgrade(schema: str) -> None:
    drop_webhook_lifecycle(schema)
