"""feedback: webhook lifecycle and safety: creator, previous secret, deliveries by subscription, no bodies.

Revision ID: feedback_0003
"""

from shared.migration_ops import add_webhook_lifecycle, drop_webhook_lifecycle

revision = "feedback_0003"
down_revision = "feedback_0002"
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    add_webhook_lifecycle(schema)


def downgrade(schema: str) -> None:
    drop_webhook_lifecycle(schema)
