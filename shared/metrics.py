"""Prometheus metrics shared by every service (each process exposes `/metrics`)."""

from prometheus_client import Counter, Gauge, Histogram

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
CONSUMER_LAG = Gauge("leadflow_consumer_lag", "Messages behind the partition end", ["group", "topic"])
OUTBOX_PUBLISHED = Counter("leadflow_outbox_published_total", "Outbox rows published to Kafka")
