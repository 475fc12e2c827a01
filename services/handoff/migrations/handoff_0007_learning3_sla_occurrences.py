"""handoff: SLA timers once per stage deadline, not once per stage, so a stage entered again
(a reopened handoff's MQL, say) gets timers of its own and the first ones keep their record.

Revision ID: handoff_0007_learning3
"""

from alembic import op

revision = "handoff_0007_learning3"
down_revision = "handoff_0006_learning"
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    op.drop_constraint("uq_sla_timers_once", "sla_timers", schema=schema)
    op.create_unique_constraint(
        "uq_sla_timers_once", "sla_timers", ["handoff_id", "kind", "stage", "deadline"], schema=schema
    )


def downgrade(schema: str) -> None:
    # Back to one timer per stage: the latest deadline's of each (handoff, kind, stage) stays.
    op.execute(
        f"DELETE FROM {schema}.sla_timers t USING {schema}.sla_timers later "
        "WHERE later.handoff_id = t.handoff_id AND later.kind = t.kind AND later.stage = t.stage "
        "AND later.timer_id > t.timer_id"
    )
    op.drop_constraint("uq_sla_timers_once", "sla_timers", schema=schema)
    op.create_unique_constraint(
        "uq_sla_timers_once", "sla_timers", ["handoff_id", "kind", "stage"], schema=schema
    )
