"""scoring's figures for `/metrics` (the platform's are in shared/metrics.py)."""

from prometheus_client import Counter, Gauge, Histogram

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

# Where an event's time goes with a model active (bench/model_active.py reads these while it runs).
RESCORE_BATCH_SECONDS = Histogram(
    "leadflow_rescore_batch_seconds",
    "Wall seconds of one consumer batch's rescore (states, score, learned hook, roll-up, saves)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)

LEARNED_HOOK_BATCH_SECONDS = Histogram(
    "leadflow_learned_hook_batch_seconds",
    "Wall seconds of the learned hook in one consumer batch that judged a lead",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)

FEATURE_STATES_BUILT = Counter(
    "leadflow_feature_states_built_total",
    "Feature states built from a lead's stored history (a lead with none under the active model's rules)",
)

FEATURE_STATE_BUILD_SECONDS = Counter(
    "leadflow_feature_state_build_seconds_total",
    "Seconds spent building feature states from histories (the histories' read included)",
)

FEATURE_STATES_WARMED = Counter(
    "leadflow_feature_states_warmed_total",
    "Feature states of recently active leads built when a predictive model became active, before it "
    "was put in force (feature_warmup)",
)

FEATURE_WARMUP_SECONDS = Counter(
    "leadflow_feature_warmup_seconds_total", "Seconds spent warming feature states at model activations"
)

PREDICTIVE_MODEL_IN_FORCE = Gauge(
    "leadflow_predictive_model_in_force", "1 while a predictive model is in force in this instance, else 0"
)
