"""Closing the loop end to end (issue 5): 20 handed-off leads with 3 rejected raise exactly one
alert; accepting more until the rate is at or under 10% resolves it. Both events reach
`ops.alerts` and, as signed Slack messages, a local webhook receiver."""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from shared.signing import verify
from tests.e2e.conftest import DevStack
from tests.support import eventually, good_fit_journey, tap, unique_email, webhook_receiver


def check_signature(secret: str, body: bytes, header: str) -> bool:
    return verify(secret, body, header, now=int(time.time()))


async def hand_off(http: httpx.AsyncClient, stack: DevStack, leads: int) -> list[str]:
    """Send `leads` good-fit journeys through intake; the ids of the handoffs they become."""
    emails = [unique_email("loop") for _ in range(leads)]
    events = [event for email in emails for event in good_fit_journey(email)]
    for start in range(0, len(events), 500):
        posted = await http.post(
            f"{stack.url('intake')}/v1/events/batch",
            json={"events": events[start : start + 500]},
            headers=stack.headers,
        )
        assert posted.status_code == 202, posted.text
    known: set[str] = set()

    async def all_handed_off() -> list[str] | None:
        page = await http.get(
            f"{stack.url('handoff')}/v1/handoffs",
            params={"status": "mql", "limit": 200},
            headers=stack.headers,
        )
        ids = {item["handoff_id"] for item in page.json()["items"]}
        known.update(ids)
        return sorted(ids) if len(ids) >= leads else None

    return await eventually(all_handed_off, timeout=60)


async def decide(http: httpx.AsyncClient, stack: DevStack, handoff_id: str, action: str) -> None:
    body = {"reason": "not_a_fit", "note": "wrong segment"} if action == "reject" else {}
    response = await http.post(
        f"{stack.url('handoff')}/v1/handoffs/{handoff_id}/{action}", json=body, headers=stack.headers
    )
    assert response.status_code == 200, response.text


async def test_three_rejections_in_twenty_raise_one_alert_and_more_acceptances_resolve_it(
    stack: DevStack, http: httpx.AsyncClient
) -> None:
    feedback = stack.url("feedback")
    with webhook_receiver(check_signature, failures=1) as receiver:
        subscribed = await http.post(
            f"{feedback}/v1/webhooks",
            json={"url": receiver.url, "event_types": ["alert.raised", "alert.resolved"]},
            headers=stack.headers,
        )
        assert subscribed.status_code == 201, subscribed.text
        receiver.secret = subscribed.json()["secret"]

        async with tap(stack.settings, stack.settings.topic_prefix + "ops.alerts") as alerts:
            first = await hand_off(http, stack, 20)
            for handoff_id in first[3:]:
                await decide(http, stack, handoff_id, "accept")
            for handoff_id in first[:3]:
                await decide(http, stack, handoff_id, "reject")

            [raised] = await alerts.wait_for("alert.raised", timeout=30)
            assert raised.data["alert_key"] == "return_rate:overall"
            assert (raised.data["numerator"], raised.data["denominator"]) == (3, 20)

            more = await hand_off(http, stack, 10)
            for handoff_id in more:
                await decide(http, stack, handoff_id, "accept")
            [resolved] = await alerts.wait_for("alert.resolved", timeout=30)
            assert (resolved.data["numerator"], resolved.data["denominator"]) == (3, 30)
            assert resolved.data["rate"] == 0.1  # at the threshold is no longer above it

            await asyncio.sleep(2.0)  # nothing more may follow: one event per change of state
            assert [e.type for e in alerts.envelopes()] == ["alert.raised", "alert.resolved"]

        # The receiver refused the first attempt; the retry got through, signed.
        await eventually(lambda: len(receiver.received) == 2 or None, timeout=60)
        messages = [json.loads(body) for _, body in receiver.received]
        assert receiver.forged == 0
        texts = " ".join(m["text"] for m in messages)
        assert "rate 15%" in texts and "rate 10%" in texts
        assert all(isinstance(m["blocks"], list) and m["blocks"] for m in messages)

    listed = await http.get(f"{feedback}/v1/alerts", headers=stack.headers)
    assert [(a["alert_key"], a["status"]) for a in listed.json()["items"]] == [
        ("return_rate:overall", "resolved")
    ]
