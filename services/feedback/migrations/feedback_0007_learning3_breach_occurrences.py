"""feedback: an SLA breach per occurrence (handoff, stage and the deadline missed), so a
reopened handoff that misses its stage's new deadline is counted and alerted again.

Revision ID: feedback_0007_learning3
"""

from alembic import op

revision = "feedback_0007_learning3"
down_revision = "feedback_0006_learning"
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    op.drop_constraint("pk_sla_breaches", "sla_breaches", schema=schema)
    op.create_primary_key("pk_sla_breaches", "sla_breaches", ["handoff_id", "stage", "due_at"], schema=schema)


def downgrade(schema: str) -> None:
    # Back to one breach per stage: the latest of each (handoff, stage) stays.
    op.execute(
        f"DELETE FROM {schema}.sla_breaches b USING {schema}.sla_breaches later "
        "WHERE later.handoff_id = b.handoff_id AND later.stage = b.stage AND later.due_at > b.due_at"
    )
    op.drop_constraint("pk_sla_breaches", "sla_breaches", schema=schema)
    op.create_primary_key("pk_sla_breaches", "sla_breaches", ["handoff_id", "stage"], schema=schema)
