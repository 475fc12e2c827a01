"""A small typed client of the handoff API, for sales tools written in Python.

    from leadflow.clients.handoff import HandoffClient

    with HandoffClient("http://localhost:8003", api_key="lf_...") as client:
        for handoff in client.queue(status="mql"):
            print(handoff.lead["email"], handoff.grade, [c.rule for c in handoff.explanation])
        client.accept(handoff)                         # If-Match and an Idempotency-Key are sent for you
        client.reject(other, reason="not_ready", note="budget next year")

Every error answer becomes a `ProblemError` carrying the RFC 9457 body; a stale
version is a `ConflictError` subclass the caller can catch and refetch on.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx

from services.handoff.schemas import (
    DeliveryPublic,
    HandoffPage,
    HandoffPublic,
    HistoryEntry,
    WebhookCreated,
)


class ProblemError(Exception):
    """The API answered with a problem (4xx/5xx); `problem` is its RFC 9457 body."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(f"{status} {problem.get('title')}: {problem.get('detail', '')}")
        self.status = status
        self.problem = problem


class ConflictError(ProblemError):
    """409 (not allowed in this stage) or 412 (someone changed the handoff first)."""


class HandoffClient:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> HandoffClient:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- reading ---------------------------------------------------------------------

    def queue(
        self,
        *,
        status: str | None = None,
        owner: str | None = None,
        due_before: datetime | None = None,
        policy: str | None = None,
        page_size: int = 100,
    ) -> Iterator[HandoffPublic]:
        """Every handoff of the queue, soonest deadline first, fetched page by page."""
        params: dict[str, Any] = {"limit": page_size}
        for name, value in (("status", status), ("owner", owner), ("policy", policy)):
            if value is not None:
                params[name] = value
        if due_before is not None:
            params["due_before"] = due_before.isoformat()
        while True:
            page = HandoffPage.model_validate(self._json("GET", "/v1/handoffs", params=params))
            yield from page.items
            if page.next_cursor is None:
                return
            params["cursor"] = page.next_cursor

    def get(self, handoff_id: str) -> HandoffPublic:
        return HandoffPublic.model_validate(self._json("GET", f"/v1/handoffs/{handoff_id}"))

    def history(self, handoff_id: str) -> list[HistoryEntry]:
        return [
            HistoryEntry.model_validate(e) for e in self._json("GET", f"/v1/handoffs/{handoff_id}/history")
        ]

    # --- deciding ----------------------------------------------------------------------

    def accept(self, handoff: HandoffPublic) -> HandoffPublic:
        return self._act(handoff, "accept", {})

    def reject(self, handoff: HandoffPublic, *, reason: str, note: str | None = None) -> HandoffPublic:
        return self._act(handoff, "reject", {"reason": reason, "note": note})

    def qualify(self, handoff: HandoffPublic, **bant: Any) -> HandoffPublic:
        return self._act(handoff, "qualify", {"details": bant})

    def opportunity(self, handoff: HandoffPublic, **details: Any) -> HandoffPublic:
        return self._act(handoff, "opportunity", {"details": details})

    def return_to_marketing(
        self, handoff: HandoffPublic, *, reason: str, note: str | None = None
    ) -> HandoffPublic:
        return self._act(handoff, "return", {"reason": reason, "note": note})

    def disqualify(self, handoff: HandoffPublic, *, reason: str) -> HandoffPublic:
        return self._act(handoff, "disqualify", {"reason": reason})

    def reassign(self, handoff: HandoffPublic, *, owner: str, reason: str | None = None) -> HandoffPublic:
        return self._act(handoff, "reassign", {"owner": owner, "reason": reason})

    # --- webhooks ----------------------------------------------------------------------

    def subscribe(self, url: str, event_types: list[str]) -> WebhookCreated:
        body = self._json("POST", "/v1/webhooks", json={"url": url, "event_types": event_types})
        return WebhookCreated.model_validate(body)

    def deliveries(self, subscription_id: str) -> list[DeliveryPublic]:
        rows = self._json("GET", f"/v1/webhooks/{subscription_id}/deliveries")
        return [DeliveryPublic.model_validate(d) for d in rows]

    # --- plumbing ----------------------------------------------------------------------

    def _act(self, handoff: HandoffPublic, action: str, body: dict[str, Any]) -> HandoffPublic:
        """One decision, guarded by the version the caller saw and retry-safe by its key."""
        headers = {"If-Match": f'"{handoff.version}"', "Idempotency-Key": str(uuid.uuid4())}
        path = f"/v1/handoffs/{handoff.handoff_id}/{action}"
        payload = {k: v for k, v in body.items() if v is not None}
        return HandoffPublic.model_validate(self._json("POST", path, json=payload, headers=headers))

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.is_success:
            return response.json()
        problem = (
            response.json()
            if "json" in response.headers.get("content-type", "")
            else {"title": response.text}
        )
        error = ConflictError if response.status_code in (409, 412) else ProblemError
        raise error(response.status_code, problem)
