"""Intake's hot path builds each Kafka record as one dict (`envelope_record`); the record is the
one the envelope models write (`to_envelope(...).to_bytes()`), byte for byte."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from services.intake.domain import IntakeEvent
from services.intake.handlers import envelope_record, to_envelope
from shared.envelope import Envelope
from shared.events import LeadEventAccepted
from shared.logging import trace_context

RECEIVED = datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)
EVENTS: list[dict[str, Any]] = [
    {
        "event_id": "e-1",
        "type": "page_view",
        "occurred_at": "2026-03-01T11:59:00Z",
        "email": " Ada@Example.COM ",
        "traits": {"title": "VP of Marketing", "company_size": 500, "country": "US"},
        "properties": {"url": "https://leadflow.example/pricing"},
    },
    {
        "event_id": "e-2",
        "type": "form_submit",
        "occurred_at": "2026-03-01T13:59:00.000123+02:00",
        "anonymous_id": " Anon-42 ",
        "traits": {"plan": "pro", "seats": 12, "ratio": 0.5, "beta": True, "none": None},
        "properties": {"form_id": "demo", "n": -3, "x": 1.25, "ok": False, "empty": None},
    },
    {
        "event_id": "e-3",
        "type": "demo_request",
        "occurred_at": "2026-03-01T06:29:00-05:30",
        "email": "grace@example.org",
        "anonymous_id": "a-7",
        "properties": {"unicode": "naïve — 東京 😀"},
    },
]


def _both(body: dict[str, Any]) -> tuple[bytes, str, bytes, bytes]:
    event = IntakeEvent.model_validate(body)
    with trace_context("trace-1"):
        key, event_id, record = envelope_record(event, received_at=RECEIVED, source="intake")
        model = to_envelope(event, received_at=RECEIVED, source="intake")
    expected = orjson.loads(model.to_bytes())
    expected["produced_at"] = record["produced_at"]  # each takes its own "now"
    return key, event_id, orjson.dumps(record), orjson.dumps(expected)


@pytest.mark.parametrize("body", EVENTS, ids=[e["event_id"] for e in EVENTS])
def test_the_record_is_the_envelope_models_bytes(body: dict[str, Any]) -> None:
    key, event_id, record, expected = _both(body)
    assert record == expected
    envelope = Envelope.from_bytes(record)
    assert key == (envelope.identity or "").encode()
    assert event_id == body["event_id"] == envelope.data["event_id"]
    assert envelope.trace_id == "trace-1"
    LeadEventAccepted.model_validate(envelope.data)  # what scoring reads it with


def test_an_event_without_an_id_gets_one_and_its_message_id_follows_it() -> None:
    body = {k: v for k, v in EVENTS[0].items() if k != "event_id"}
    event = IntakeEvent.model_validate(body)
    _, event_id, record = envelope_record(event, received_at=RECEIVED, source="intake")
    assert event_id and record["data"]["event_id"] == event_id
    assert record["id"].startswith(f"evt:{event_id}:")


def test_the_record_spells_every_payload_field() -> None:
    """A field added to `LeadEventAccepted` must be added to `envelope_record` as well."""
    _, _, record = envelope_record(IntakeEvent.model_validate(EVENTS[0]), received_at=RECEIVED, source="x")
    assert list(record["data"]) == list(LeadEventAccepted.model_fields)
    assert list(record) == list(Envelope.model_fields)
