"""Prometheus metrics of every service (each process exposes `/metrics`).

Every figure is declared here, so `deploy/grafana/dashboards/leadflow.json` and
docs/operations.md ("What /metrics exposes") can be checked against one module.
Labels take values from code or configuration (rules, stages, policies, teams,
configured dimensions), never from a request or an event, so each metric has a
bounded number of series.
"""

from prometheus_client import Counter, Gauge, Histogram

# --- every service ---------------------------------------------------------------------

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

# --- intake ------------------------------------------------------------------------------

INTAKE_EVENTS = Counter(
    "leadflow_intake_events_total",
    "Events intake accepted onto lead.events or refused; reason: the rule a refused event broke",
    ["outcome", "reason"],
)

# --- scoring -----------------------------------------------------------------------------

MQLS = Counter(
    "leadflow_mqls_total", "MQLs emitted (lead.mql_reached), counted as their transaction commits", ["grade"]
)

# --- handoff -----------------------------------------------------------------------------

HANDOFFS = Gauge("leadflow_handoffs", "Handoffs in each stage, counted in the database", ["stage"])
SLA_WARNINGS = Counter(
    "leadflow_sla_warnings_total", "SLA warnings fired (handoff.sla_warning)", ["policy", "team"]
)
SLA_BREACHES = Counter(
    "leadflow_sla_breaches_total", "SLA breaches fired (handoff.sla_breached)", ["policy", "team"]
)
WEBHOOK_DELIVERIES = Counter(
    "leadflow_webhook_deliveries_total",
    "Webhook delivery attempts; outcome: delivered, retrying (will be tried again) or failed (gave up)",
    ["outcome"],
)

# --- feedback ----------------------------------------------------------------------------

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
