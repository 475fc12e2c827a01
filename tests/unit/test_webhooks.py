"""The webhook machinery every service shares: when deliveries are retried, what is posted and
how it is signed, and which subscriptions a service accepts."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pydantic
import pytest
from sqlalchemy import MetaData

from shared.signing import SIGNATURE_HEADER, verify
from shared.webhook_api import webhook_create_model
from shared.webhook_delivery import as_stored, attempt_schedule, next_state, signed_request
from shared.webhooks import webhook_tables

CREATED = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
NOW = CREATED + timedelta(minutes=1)
SCHEDULE = attempt_schedule(10, timedelta(hours=24))


def delivery(attempts: int = 0, payload: bytes = b'{"type":"handoff.created"}') -> SimpleNamespace:
    return SimpleNamespace(
        delivery_id=7,
        attempts=attempts,
        created_at=CREATED,
        payload=payload,
        secret="whsec_test",
        event_type="handoff.created",
    )


def test_retries_are_due_at_growing_intervals_from_creation_for_a_day() -> None:
    assert SCHEDULE[:4] == [timedelta(seconds=s) for s in (10, 30, 70, 150)]
    assert SCHEDULE[-1] <= timedelta(hours=24) < SCHEDULE[-1] + timedelta(hours=1)


def test_a_2xx_answer_delivers() -> None:
    state = next_state(delivery(), 204, None, NOW, SCHEDULE)
    assert state == {
        "attempts": 1,
        "last_status_code": 204,
        "last_error": None,
        "status": "delivered",
        "delivered_at": NOW,
    }


@pytest.mark.parametrize(("status", "error"), [(500, "boom"), (None, "ConnectError: refused"), (302, "")])
def test_anything_else_is_tried_again_on_schedule(status: int | None, error: str) -> None:
    state = next_state(delivery(attempts=2), status, error, NOW, SCHEDULE)
    assert state == {
        "attempts": 3,
        "last_status_code": status,
        "last_error": error,
        "next_attempt_at": CREATED + SCHEDULE[2],
    }


def test_after_the_last_scheduled_retry_the_delivery_fails() -> None:
    state = next_state(delivery(attempts=len(SCHEDULE)), 503, "down", NOW, SCHEDULE)
    assert state["status"] == "failed" and state["attempts"] == len(SCHEDULE) + 1


def test_the_rendered_body_is_what_gets_signed_and_posted() -> None:
    body, headers = signed_request(
        delivery(), lambda payload: b"[" + payload + b"]", secrets=["whsec_test"], timestamp=1_780_000_000
    )
    assert body == b'[{"type":"handoff.created"}]'
    assert verify("whsec_test", body, headers[SIGNATURE_HEADER], now=1_780_000_000)
    assert headers["Leadflow-Event-Type"] == "handoff.created"
    assert headers["Leadflow-Delivery-Id"] == "7"
    assert headers["Content-Type"] == "application/json"


def test_handoff_deliveries_post_the_envelope_byte_for_byte() -> None:
    body, _ = signed_request(delivery(), as_stored, secrets=["whsec_test"], timestamp=1_780_000_000)
    assert body == delivery().payload


def test_a_subscription_takes_only_the_services_event_types() -> None:
    create = webhook_create_model(("alert.raised", "alert.resolved"))
    made = create.model_validate(
        {"url": "https://hooks.slack.com/services/T/B/x", "event_types": ["alert.raised"]}
    )
    assert made.event_types == ["alert.raised"]
    for event_types in (["handoff.created"], []):
        with pytest.raises(pydantic.ValidationError):
            create.model_validate({"url": "https://example.com/hook", "event_types": event_types})
    schema = create.model_json_schema()
    assert schema["title"] == "WebhookCreate"
    assert schema["properties"]["event_types"]["items"]["enum"] == ["alert.raised", "alert.resolved"]


def test_each_schema_gets_the_same_two_tables() -> None:
    metadata = MetaData()
    handoff, feedback = webhook_tables(metadata, "handoff"), webhook_tables(metadata, "feedback")
    assert handoff.deliveries.fullname == "handoff.webhook_deliveries"
    assert feedback.subscriptions.fullname == "feedback.webhook_subscriptions"
    assert [c.name for c in handoff.deliveries.columns] == [c.name for c in feedback.deliveries.columns]
    assert {i.name for i in feedback.deliveries.indexes} == {
        "ix_webhook_deliveries_due",
        "ix_webhook_deliveries_subscription",
    }
