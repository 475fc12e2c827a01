"""What sales tools rely on in the handoff API: versions, retries, isolation, reassignment, webhooks."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from leadflow.admin.keys import create_key
from services.handoff.schemas import HandoffPage, HandoffPublic
from shared.auth import Scope
from shared.envelope import Envelope
from shared.settings import Settings
from shared.signing import SIGNATURE_HEADER, verify
from tests.integration.test_pipeline_services import intake_envelopes, publish
from tests.support import ADMIN, eventually, good_fit_journey, running, tap, unique_email


async def handed_off(settings: Settings, lifecycle, email: str | None = None) -> Envelope:  # type: ignore[no-untyped-def]
    email = email or unique_email()
    await publish(settings, intake_envelopes(good_fit_journey(email)))
    [created] = await lifecycle.wait_for("handoff.created", lambda e: e.data["handoff_id"] not in _seen)
    _seen.add(created.data["handoff_id"])
    return created


_seen: set[str] = set()
AMER_SALES = {"maya.johnson", "carlos.rivera", "ethan.brooks"}
ELSEWHERE = "lena.hoffmann"  # a rep of emea-sales (config/routing.yaml), not of the amer team


async def test_stale_versions_get_412_and_retried_keys_replay_the_first_answer(settings: Settings) -> None:
    async with (
        running("scoring", settings),
        running("handoff", settings) as handoff,
        tap(settings, settings.topic_prefix + "lead.lifecycle") as lifecycle,
    ):
        created = await handed_off(settings, lifecycle)
        url = f"/v1/handoffs/{created.data['handoff_id']}"
        first = await handoff.client.get(url, headers=ADMIN)
        etag = first.headers["etag"]
        assert etag == '"1"'

        accepted = await handoff.client.post(f"{url}/accept", headers={**ADMIN, "If-Match": etag})
        assert accepted.status_code == 200 and accepted.headers["etag"] == '"2"'
        assert (
            HandoffPublic.model_validate(accepted.json()).stage == "sal"
        )  # answers keep the documented shape
        page = await handoff.client.get("/v1/handoffs", headers=ADMIN)
        assert HandoffPage.model_validate(page.json()).items
        stale = await handoff.client.post(
            f"{url}/return", json={"reason": "not_ready"}, headers={**ADMIN, "If-Match": etag}
        )
        assert stale.status_code == 412
        assert stale.headers["content-type"] == "application/problem+json"

        retry = {**ADMIN, "Idempotency-Key": "qualify-1"}
        bant = {"details": {"budget": "50k", "authority": "VP", "need": "pipeline", "timeline": "Q1"}}
        once = await handoff.client.post(f"{url}/qualify", json=bant, headers=retry)
        twice = await handoff.client.post(f"{url}/qualify", json=bant, headers=retry)
        assert once.status_code == twice.status_code == 200
        assert twice.json() == once.json() and twice.headers["idempotent-replayed"] == "true"
        other = await handoff.client.post(f"{url}/opportunity", json={}, headers=retry)
        assert other.status_code == 422 and other.json()["errors"][0]["field"] == "Idempotency-Key"
        await asyncio.sleep(1.0)
        assert len(lifecycle.envelopes("lead.sql_qualified")) == 1
        history = (await handoff.client.get(f"{url}/history", headers=ADMIN)).json()
        assert [h["action"] for h in history] == ["create", "accept", "qualify"]


async def test_a_rep_sees_and_acts_on_their_own_handoffs_only(settings: Settings) -> None:
    async with (
        running("scoring", settings),
        running("handoff", settings) as handoff,
        tap(settings, settings.topic_prefix + "lead.lifecycle") as lifecycle,
    ):
        created = await handed_off(settings, lifecycle)
        owner = created.data["owner"]
        handoff_id = created.data["handoff_id"]
        assert created.data["owner"] in AMER_SALES  # a US lead of 500 people: the amer team, round robin
        mine, _ = await create_key(
            settings, name="owner", scopes=[Scope.HANDOFFS_READ, Scope.HANDOFFS_WRITE], owner=owner
        )
        theirs, _ = await create_key(
            settings, name="other", scopes=[Scope.HANDOFFS_READ, Scope.HANDOFFS_WRITE], owner=ELSEWHERE
        )
        manager, _ = await create_key(
            settings, name="mgr", scopes=[Scope.HANDOFFS_READ, Scope.HANDOFFS_MANAGE], owner="boss"
        )
        as_owner, as_other = {"X-API-Key": mine}, {"X-API-Key": theirs}

        assert (await handoff.client.get(f"/v1/handoffs/{handoff_id}", headers=as_owner)).status_code == 200
        hidden = await handoff.client.get(f"/v1/handoffs/{handoff_id}", headers=as_other)
        assert hidden.status_code == 404  # not 403: ids do not leak
        assert (
            await handoff.client.post(f"/v1/handoffs/{handoff_id}/accept", headers=as_other)
        ).status_code == 404
        assert (await handoff.client.get("/v1/handoffs", headers=as_other)).json()["items"] == []
        queue = (await handoff.client.get("/v1/handoffs", headers=as_owner)).json()["items"]
        assert [h["handoff_id"] for h in queue] == [handoff_id]
        assert queue[0]["explanation"] and queue[0]["lead"]["traits"]["title"] == "VP of Marketing"

        unknown = await handoff.client.post(
            f"/v1/handoffs/{handoff_id}/reassign",
            json={"owner": "someone.else", "reason": "vacation"},
            headers={"X-API-Key": manager},
        )
        assert unknown.status_code == 422
        assert [(e["field"], e["rule"]) for e in unknown.json()["errors"]] == [("owner", "unknown_owner")]
        moved = await handoff.client.post(
            f"/v1/handoffs/{handoff_id}/reassign",
            json={"owner": ELSEWHERE, "reason": "vacation"},
            headers={"X-API-Key": manager},
        )
        assert moved.status_code == 200 and moved.json()["owner"] == ELSEWHERE
        [event] = await lifecycle.wait_for("handoff.reassigned")
        assert (event.data["from_owner"], event.data["to_owner"]) == (owner, ELSEWHERE)
        assert (await handoff.client.get(f"/v1/handoffs/{handoff_id}", headers=as_owner)).status_code == 404
        assert (
            await handoff.client.post(f"/v1/handoffs/{handoff_id}/accept", headers=as_other)
        ).status_code == 200
        rep_cannot = await handoff.client.post(
            f"/v1/handoffs/{handoff_id}/reassign", json={"owner": "x"}, headers=as_other
        )
        assert rep_cannot.status_code == 403


class Receiver(BaseHTTPRequestHandler):
    """A sales tool's webhook endpoint: verifies every signature, fails the first two attempts."""

    secret = ""
    received: list[dict] = []
    attempts = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).attempts += 1
        ok = verify(self.secret, body, self.headers[SIGNATURE_HEADER], now=int(time.time()))
        if not ok:
            self.send_response(400)
        elif type(self).attempts <= 2:
            self.send_response(503)
        else:
            type(self).received.append(json.loads(body))
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    Receiver.received, Receiver.attempts = [], 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/leadflow"
    server.shutdown()


async def test_webhooks_are_signed_retried_and_visible(settings: Settings, receiver: str) -> None:
    fast = settings.model_copy(update={"webhook_first_retry_s": 0.2, "webhook_poll_s": 0.1})
    async with (
        running("scoring", fast),
        running("handoff", fast) as handoff,
        tap(fast, fast.topic_prefix + "lead.lifecycle") as lifecycle,
    ):
        made = await handoff.client.post(
            "/v1/webhooks", json={"url": receiver, "event_types": ["handoff.created"]}, headers=ADMIN
        )
        assert made.status_code == 201
        Receiver.secret = made.json()["secret"]
        created = await handed_off(fast, lifecycle)
        await eventually(lambda: Receiver.received or None, timeout=30)
        assert Receiver.received[0]["data"]["handoff_id"] == created.data["handoff_id"]
        assert Receiver.attempts == 3
        deliveries = (
            await handoff.client.get(
                f"/v1/webhooks/{made.json()['subscription_id']}/deliveries", headers=ADMIN
            )
        ).json()
        assert [(d["status"], d["attempts"], d["last_status_code"]) for d in deliveries] == [
            ("delivered", 3, 204)
        ]
        bad = await handoff.client.post(
            "/v1/webhooks", json={"url": receiver, "event_types": ["x"]}, headers=ADMIN
        )
        assert bad.status_code == 422
