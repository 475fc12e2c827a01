"""handoff's figures for `/metrics` (the platform's are in shared/metrics.py).

`stage_gauges` sets HANDOFFS from the database; `timers` counts the SLA events it fires.
"""

from prometheus_client import Counter, Gauge

HANDOFFS = Gauge("leadflow_handoffs", "Handoffs in each stage, counted in the database", ["stage"])
SLA_WARNINGS = Counter(
    "leadflow_sla_warnings_total", "SLA warnings fired (handoff.sla_warning)", ["policy", "team"]
)
SLA_BREACHES = Counter(
    "leadflow_sla_breaches_total", "SLA breaches fired (handoff.sla_breached)", ["policy", "team"]
)
