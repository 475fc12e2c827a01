"""`leadflow privacy erase`: ask scoring to erase a person, and follow the request to the end."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from shared.settings import Settings


class ErasureRefused(Exception):
    """Scoring answered the request with a problem (bad input, a key without the scope)."""


async def erase(
    settings: Settings, *, email: str | None, lead_id: str | None, wait_s: float | None
) -> dict[str, Any]:
    """The request's state: as accepted, or once `completed` (waiting up to `wait_s` seconds)."""
    headers = {"Authorization": f"Bearer {settings.admin_key}"}
    async with httpx.AsyncClient(
        base_url=settings.url_of("scoring"), headers=headers, timeout=10.0
    ) as client:
        answer = await client.post("/v1/erasures", json={"email": email, "lead_id": lead_id})
        if answer.status_code != 202:
            raise ErasureRefused(f"HTTP {answer.status_code}: {answer.text}")
        request_id = answer.json()["request_id"]
        deadline = time.monotonic() + (wait_s or 0)
        while True:
            state: dict[str, Any] = (await client.get(f"/v1/erasures/{request_id}")).json()
            if wait_s is None or state["state"] == "completed" or time.monotonic() > deadline:
                return state
            await asyncio.sleep(0.2)
