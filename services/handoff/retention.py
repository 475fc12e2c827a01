"""What handoff's retention prunes (`shared/retention.py`): one line per table.

The handoffs themselves stay (stage, owner, deadlines): what feedback and the queue count
comes from them and from `lead.lifecycle`, never from the history entries.
"""

from __future__ import annotations

from services.handoff import store
from shared.retention import PruneTarget, webhook_deliveries_target
from shared.retention_policy import DataKind

TARGETS = [
    PruneTarget(DataKind.HANDOFF_HISTORY, store.history, age="at"),
    webhook_deliveries_target(store.webhooks),
    PruneTarget(DataKind.IDEMPOTENCY_KEYS, store.idempotency_keys, age="created_at"),
]
