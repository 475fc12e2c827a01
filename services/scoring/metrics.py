"""scoring's figures for `/metrics` (the platform's are in shared/metrics.py)."""

from prometheus_client import Counter

MQLS = Counter(
    "leadflow_mqls_total", "MQLs emitted (lead.mql_reached), counted as their transaction commits", ["grade"]
)

EVENTS_CONFLICTING = Counter(
    "leadflow_events_conflicting_total",
    "Events whose event_id was already stored with another body, counted as their transaction commits; "
    "the first body is kept, each conflict is listed at GET /v1/events/conflicts",
)

LEARNED_HOOK_SECONDS = Counter(
    "leadflow_learned_hook_seconds_total",
    "Seconds of the learned hook with a predictive model active: the judged leads' accounts read, "
    "their features (from their feature states), one likelihood call per batch (with top factors) "
    "and the learned MQL rule",
)

LEARNED_HOOK_LEADS = Counter(
    "leadflow_learned_hook_leads_total", "Rescores the active predictive model judged (a likelihood each)"
)
