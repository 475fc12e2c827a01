from prometheus_client import Counter

EVENTS_ACCEPTED = Counter("leadflow_intake_events_accepted_total", "Events published", ["type"])
EVENTS_REJECTED = Counter("leadflow_intake_events_rejected_total", "Events refused", ["rule"])
