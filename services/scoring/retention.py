"""What scoring's retention prunes (`shared/retention.py`): one line per table."""

from __future__ import annotations

from services.scoring import store
from services.scoring.lifecycle import event_types_kept_forever
from services.scoring.model import ScoringModel
from shared.retention import PruneTarget
from shared.retention_policy import DataKind

# A lead's events go together, once its latest is past the retention: while it is active its
# whole history is what it is scored from. The stored score, stage and history stay as they
# are; a lead that comes back later is scored from the events it has then.
DORMANT_LEAD = (
    f'NOT EXISTS (SELECT 1 FROM "{store.SCHEMA}".lead_events AS newer '
    "WHERE newer.lead_id = t.lead_id AND newer.occurred_at >= :cutoff)"
)


def targets(model: ScoringModel) -> list[PruneTarget]:
    kept = event_types_kept_forever(model)
    raw_events = DORMANT_LEAD + (" AND t.type NOT IN :kept_types" if kept else "")
    return [
        PruneTarget(
            DataKind.RAW_EVENTS,
            store.lead_events,
            age="occurred_at",
            condition=raw_events,
            params={"kept_types": kept} if kept else {},
        ),
        PruneTarget(DataKind.EVENT_CONFLICTS, store.event_conflicts, age="seen_at"),
    ]
