"""scoring's figures for `/metrics` (the platform's are in shared/metrics.py)."""

from prometheus_client import Counter

MQLS = Counter(
    "leadflow_mqls_total", "MQLs emitted (lead.mql_reached), counted as their transaction commits", ["grade"]
)
