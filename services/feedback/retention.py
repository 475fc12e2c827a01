"""What feedback's retention prunes (`shared/retention.py`): one line per table.

Facts (`handoff_facts`, `fact_rules`, `sla_breaches`) and alerts are never pruned: every
figure feedback reports is computed from them, so pruning never moves a figure.
"""

from __future__ import annotations

from services.feedback import alert_webhooks
from shared.retention import PruneTarget, webhook_deliveries_target

TARGETS: list[PruneTarget] = [webhook_deliveries_target(alert_webhooks.tables)]
