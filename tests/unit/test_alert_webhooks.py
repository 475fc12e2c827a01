"""Alert webhooks as ops see them in Slack: what each alert's message says, and that it is a
valid incoming-webhook message."""

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from services.feedback.alert_webhooks import render, slack_message
from shared.envelope import Envelope
from shared.events import AlertFigures, AlertRaised, AlertResolved, HandoffReassigned, envelope_for

RATE = {
    "alert_key": "return_rate:source:webinar",
    "metric": "return_rate",
    "group": "source:webinar",
    "window": "30d",
    "rate": 0.25,
    "numerator": 10,
    "denominator": 40,
    "ci_low": 0.142,
    "ci_high": 0.399,
    "threshold": 0.1,
    "severity": "confirmed",
}
BREACH = {
    "alert_key": "sla_breach:h-42:mql",
    "metric": "sla_breach",
    "group": "team:amer-sales",
    "handoff_id": "h-42",
    "owner": "maya.johnson",
    "team": "amer-sales",
    "policy": "hot",
    "stage": "mql",
    "due_at": datetime(2026, 11, 24, 15, 30, tzinfo=UTC),
}
HEADER_MAX, FIELDS_MAX, FIELD_TEXT_MAX = 150, 10, 2000  # Slack's Block Kit limits


def alert(model: type[AlertFigures], **figures: Any) -> Envelope:
    return envelope_for(model(**figures), source="feedback", lead_id=None)


def assert_valid_slack_message(message: dict[str, Any]) -> None:
    """An incoming-webhook body: a non-empty fallback `text`, and `blocks` Slack can render."""
    assert isinstance(message["text"], str) and message["text"].strip()
    blocks = message["blocks"]
    assert isinstance(blocks, list) and blocks
    assert all(isinstance(block, dict) and isinstance(block.get("type"), str) for block in blocks)
    for block in blocks:
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text" and len(block["text"]["text"]) <= HEADER_MAX
        elif block["type"] == "section":
            assert 1 <= len(block["fields"]) <= FIELDS_MAX
            for field in block["fields"]:
                assert field["type"] == "mrkdwn" and len(field["text"]) <= FIELD_TEXT_MAX
        else:
            assert block["type"] == "context"
            assert all(e["type"] in ("mrkdwn", "plain_text", "image") for e in block["elements"])
    orjson.dumps(message)  # JSON as it stands


def header(message: dict[str, Any]) -> str:
    text: str = message["blocks"][0]["text"]["text"]
    return text


def fields(message: dict[str, Any]) -> dict[str, str]:
    [section] = [b for b in message["blocks"] if b["type"] == "section"]
    return dict(f["text"].split("\n", 1) for f in section["fields"])


def test_a_raised_return_rate_alert_reads_as_the_rate_over_the_threshold() -> None:
    message = slack_message(alert(AlertRaised, **RATE))
    assert_valid_slack_message(message)
    assert header(message) == ":rotating_light: Return rate above 10% — source:webinar"
    assert fields(message) == {
        "*Rate*": "25% (95% CI 14.2%–39.9%)",
        "*Decisions*": "10 of 40 sent back",
        "*Threshold*": "10%",
        "*Window*": "30d",
        "*Severity*": "confirmed (even the interval's lower bound is above the threshold)",
    }
    assert message["text"].startswith("Return rate above 10% — source:webinar: rate 25%")


def test_a_resolved_return_rate_alert_says_so_with_the_figures_it_resolved_at() -> None:
    figures = {**RATE, "rate": 0.08, "numerator": 4, "denominator": 50, "ci_low": 0.03, "ci_high": 0.19}
    message = slack_message(alert(AlertResolved, **figures))
    assert_valid_slack_message(message)
    assert header(message) == ":white_check_mark: Resolved: return rate back to 10% or below — source:webinar"
    assert fields(message)["*Rate*"] == "8% (95% CI 3%–19%)"
    assert fields(message)["*Decisions*"] == "4 of 50 sent back"


def test_a_rate_alert_resolved_with_no_decisions_left_has_no_rate() -> None:
    figures = {**RATE, "rate": None, "numerator": 0, "denominator": 0, "ci_low": None, "ci_high": None}
    message = slack_message(alert(AlertResolved, **figures))
    assert_valid_slack_message(message)
    assert fields(message)["*Rate*"] == "n/a (no decisions)"


@pytest.mark.parametrize(
    ("model", "title"),
    [
        (AlertRaised, ":rotating_light: SLA breached — handoff h-42"),
        (AlertResolved, ":white_check_mark: Resolved: SLA breach — handoff h-42"),
    ],
)
def test_an_sla_breach_alert_names_the_handoff_its_owner_and_deadline(
    model: type[AlertFigures], title: str
) -> None:
    message = slack_message(alert(model, **BREACH))
    assert_valid_slack_message(message)
    assert header(message) == title
    assert fields(message) == {
        "*Handoff*": "`h-42`",
        "*Owner*": "maya.johnson",
        "*Team*": "amer-sales",
        "*Policy*": "hot",
        "*Stage*": "mql",
        "*Due at*": "<!date^1795534200^{date_short_pretty} {time}|2026-11-24 15:30 UTC>",
    }
    assert "owner maya.johnson" in message["text"] and "due at 2026-11-24 15:30 UTC" in message["text"]


def test_values_cannot_inject_slack_markup() -> None:
    message = slack_message(alert(AlertRaised, **{**BREACH, "owner": "<!channel> & co"}))
    assert fields(message)["*Owner*"] == "&lt;!channel&gt; &amp; co"


def test_the_posted_body_is_the_message_as_json() -> None:
    envelope = alert(AlertRaised, **RATE)
    assert orjson.loads(render(envelope.to_bytes())) == slack_message(envelope)


def test_anything_but_an_alert_is_refused() -> None:
    envelope = envelope_for(
        HandoffReassigned(handoff_id="h", from_owner="a", to_owner="b"), source="x", lead_id="l"
    )
    with pytest.raises(ValueError, match="not an alert"):
        slack_message(envelope)
