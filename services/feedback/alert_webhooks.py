"""Alert webhooks for ops: every `alert.raised` / `alert.resolved` posted as a Slack message.

Subscribers register a URL (a Slack incoming webhook, or anything that takes its format);
the feedback consumer reads `ops.alerts`, so a delivery exists only for an alert that was
committed and published, and each is signed and retried like handoff's webhooks
(`shared.webhooks`). What is stored is the alert's envelope; the Slack message is rendered
from it when posted.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from services.feedback import store
from shared import webhook_delivery, webhooks
from shared.auth import Scope
from shared.consumer import BatchHandler
from shared.envelope import Envelope
from shared.events import AlertFigures, AlertRaised, AlertResolved, parse_data
from shared.runtime import BackgroundLoop
from shared.webhook_api import webhook_router

EVENT_TYPES = (AlertRaised.event_type, AlertResolved.event_type)

tables = webhooks.webhook_tables(store.metadata, store.SCHEMA)

router = webhook_router(
    tables, event_types=EVENT_TYPES, scope=Scope.ADMIN, tag="webhooks", subject="alerts, as Slack messages"
)


def batch_handlers() -> Mapping[str, BatchHandler]:
    """Enqueue a delivery per subscriber of each alert read from `ops.alerts`."""
    enqueue = webhooks.make_enqueue(tables)
    return {event_type: enqueue for event_type in EVENT_TYPES}


def make_delivery_loop(*, first_retry_s: float, max_age: timedelta, poll_s: float) -> BackgroundLoop:
    return webhook_delivery.make_delivery_loop(
        tables,
        render=render,
        first_retry_s=first_retry_s,
        max_age=max_age,
        poll_s=poll_s,
        name="alert_webhook_deliveries",
    )


def render(payload: bytes) -> bytes:
    """The body posted for a stored alert envelope."""
    return orjson.dumps(slack_message(Envelope.from_bytes(payload)))


# --- the Slack message (incoming-webhook format: a fallback `text` and Block Kit `blocks`) ----


def slack_message(envelope: Envelope) -> dict[str, Any]:
    """An `alert.raised` or `alert.resolved` envelope as a Slack incoming-webhook message."""
    alert = parse_data(envelope)
    if not isinstance(alert, AlertFigures):
        raise ValueError(f"not an alert: {envelope.type}")
    raised = envelope.type == AlertRaised.event_type
    describe = _sla_breach if alert.metric == "sla_breach" else _return_rate
    title, fields = describe(alert, raised)
    emoji = ":rotating_light:" if raised else ":white_check_mark:"
    header = {"type": "plain_text", "text": f"{emoji} {title}"[:150], "emoji": True}
    source = f"`{_escape(alert.alert_key)}` · {_when(envelope.occurred_at)} · leadflow {envelope.source}"
    summary = ", ".join(f"{name.lower()} {_plain(v)}" for name, v in fields if _plain(v) not in title)
    return {
        "text": f"{_escape(title)}: {summary}",
        "blocks": [
            {"type": "header", "text": header},
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in fields],
            },
            {"type": "context", "elements": [{"type": "mrkdwn", "text": source}]},
        ],
    }


def _return_rate(alert: AlertFigures, raised: bool) -> tuple[str, list[tuple[str, str]]]:
    threshold = _percent(alert.threshold) if alert.threshold is not None else "the threshold"
    title = (
        f"Return rate above {threshold} — {alert.group}"
        if raised
        else f"Resolved: return rate back to {threshold} or below — {alert.group}"
    )
    rate = "n/a (no decisions)" if alert.rate is None else _percent(alert.rate)
    if alert.ci_low is not None and alert.ci_high is not None:
        rate += f" (95% CI {_percent(alert.ci_low)}–{_percent(alert.ci_high)})"
    fields = [
        ("Rate", rate),
        ("Decisions", f"{alert.numerator} of {alert.denominator} sent back"),
        ("Threshold", threshold),
        ("Window", _escape(alert.window or "n/a")),
        ("Severity", SEVERITIES.get(alert.severity or "", _escape(alert.severity or "n/a"))),
    ]
    return title, fields


SEVERITIES = {
    "watch": "watch (above the threshold; the interval still reaches it)",
    "confirmed": "confirmed (even the interval's lower bound is above the threshold)",
}


def _sla_breach(alert: AlertFigures, raised: bool) -> tuple[str, list[tuple[str, str]]]:
    handoff = alert.handoff_id or "unknown"
    title = f"SLA breached — handoff {handoff}" if raised else f"Resolved: SLA breach — handoff {handoff}"
    fields = [
        ("Handoff", f"`{_escape(handoff)}`"),
        ("Owner", _escape(alert.owner or "n/a")),
        ("Team", _escape(alert.team or "n/a")),
        ("Policy", _escape(alert.policy or "n/a")),
        ("Stage", _escape(alert.stage or "n/a")),
        ("Due at", _when(alert.due_at) if alert.due_at else "n/a"),
    ]
    return title, fields


def _percent(share: float) -> str:
    return f"{share * 100:.1f}".removesuffix(".0") + "%"


def _when(at: datetime) -> str:
    """A Slack date token: shown in each reader's timezone, with UTC as the fallback text."""
    at = at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
    fallback = at.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def _escape(text: str) -> str:
    """Slack's mrkdwn escaping: only &, < and > are control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _plain(value: str) -> str:
    """A field value for the one-line fallback: no date tokens, no backticks."""
    if value.startswith("<!date^"):
        return value.rsplit("|", 1)[1].rstrip(">")
    return value.strip("`")
