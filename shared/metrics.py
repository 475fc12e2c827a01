"""Prometheus metrics of the platform, which every service exposes on `/metrics`.

A service's own figures are declared in its `services/<name>/metrics.py`; these modules
together declare every figure, and tests/unit/test_deploy_files.py checks
`deploy/grafana/dashboards/leadflow.json` and docs/operations.md ("What /metrics exposes")
against all of them. Labels take values from code or configuration (rules, stages,
policies, teams, configured dimensions), never from a request or an event, so each metric
has a bounded number of series.
"""

from prometheus_client import Counter, Gauge, Histogram

# --- every service -------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "leadflow_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "leadflow_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
MESSAGES_CONSUMED = Counter(
    "leadflow_messages_consumed_total", "Kafka messages handled", ["group", "outcome"]
)
CONSUMER_LAG = Gauge(
    "leadflow_consumer_lag",
    "Messages behind the partition end (highwater minus the group's position), per assigned partition",
    ["group", "topic", "partition"],
)
OUTBOX_PUBLISHED = Counter("leadflow_outbox_published_total", "Outbox rows published to Kafka")

# --- webhook delivery (shared/webhooks.py), which handoff and feedback run -------------

WEBHOOK_DELIVERIES = Counter(
    "leadflow_webhook_deliveries_total",
    "Webhook delivery attempts; outcome: delivered, retrying (will be tried again) or failed (gave up)",
    ["outcome"],
)

# --- retention (shared/retention.py), which every service with tables runs ------------------

RETENTION_PRUNED = Counter(
    "leadflow_retention_pruned_total",
    "Rows deleted because they were past their retention; kind: raw_events, inbox, webhook_deliveries, ...",
    ["kind"],  # the service is the scrape target's label
)
