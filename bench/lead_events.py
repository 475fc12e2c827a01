"""The intake events the bench posts and publishes: a good-fit lead's page views and a journey
that reaches MQL on its last event."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any


def event(email: str, n: int, kind: str = "page_view") -> dict[str, Any]:
    props = {"url": f"https://leadflow.example/blog/{n}"} if kind == "page_view" else {"form_id": "demo"}
    return {
        "event_id": uuid.uuid4().hex,
        "type": kind,
        "occurred_at": (datetime.now(UTC) - timedelta(seconds=60 - n)).isoformat(),
        "email": email,
        "traits": {"title": "VP of Marketing", "company_size": 500, "industry": "Software", "country": "US"},
        "properties": props,
    }


def journey(email: str) -> list[dict[str, Any]]:
    return [
        {**event(email, 0), "properties": {"url": "https://leadflow.example/pricing"}},
        {**event(email, 1), "type": "content_download", "properties": {"content_id": "whitepaper"}},
        {**event(email, 2), "properties": {"url": "https://leadflow.example/pricing"}},
        event(email, 3, "demo_request"),
    ]
