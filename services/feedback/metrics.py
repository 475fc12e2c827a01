"""feedback's figures for `/metrics` (the platform's are in shared/metrics.py), set by the
alert timer (`alerting`)."""

from prometheus_client import Gauge

RETURN_RATE = Gauge(
    "leadflow_return_rate",
    "Share of decided handoffs sent back to marketing over the window (0-1); "
    "group: overall or <dimension>:<value> of the configured dimensions",
    ["group"],
)
RETURN_RATE_DECISIONS = Gauge(
    "leadflow_return_rate_decisions",
    "Decisions (accepted or rejected) the return rate is computed on",
    ["group"],
)
ALERTS_OPEN = Gauge("leadflow_alerts_open", "Alerts raised and not yet resolved", ["metric"])
