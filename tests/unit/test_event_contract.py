"""The event contract: every event of PRODUCT.md has a model, a topic and a published schema."""

from __future__ import annotations

import json
from pathlib import Path

from shared.events import EVENT_MODELS, LEAD_LIFECYCLE, OPS_ALERTS, HandoffCreated, envelope_for, parse_data
from shared.schemas import asyncapi_document, event_schemas

DOCS = Path(__file__).resolve().parents[2] / "docs" / "schemas"

LIFECYCLE = {
    "lead.scored",
    "lead.mql_reached",
    "handoff.created",
    "lead.sal_accepted",
    "lead.rejected",
    "lead.returned",
    "lead.sql_qualified",
    "lead.sqo_created",
    "lead.disqualified",
    "handoff.reassigned",
    "handoff.claimed",
    "handoff.sla_warning",
    "handoff.sla_breached",
}


def test_every_lifecycle_and_alert_event_of_the_contract_has_a_model_on_its_topic() -> None:
    assert {t for t, m in EVENT_MODELS.items() if m.topic == LEAD_LIFECYCLE} == LIFECYCLE
    assert {t for t, m in EVENT_MODELS.items() if m.topic == OPS_ALERTS} == {"alert.raised", "alert.resolved"}


def test_published_schemas_match_the_models() -> None:
    for name, schema in event_schemas().items():
        published = json.loads((DOCS / f"{name}.json").read_text())
        assert published == json.loads(json.dumps(schema)), f"run `make schemas`: {name} is stale"
    assert json.loads((DOCS / "asyncapi.json").read_text()) == json.loads(json.dumps(asyncapi_document()))


def test_envelope_payload_validates_against_its_model() -> None:
    from datetime import UTC, datetime

    data = HandoffCreated(
        handoff_id="h", cycle=1, owner="q", policy="hot", decide_by=datetime.now(UTC), score=60, grade="A"
    )
    envelope = envelope_for(data, source="handoff", lead_id="lead-1", trace_id="t1")
    assert envelope.type == "handoff.created" and envelope.trace_id == "t1"
    assert parse_data(envelope) == data
