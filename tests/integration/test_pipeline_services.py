"""scoring, handoff and feedback in-process against the real broker and Postgres:
the consumer guarantees (at-least-once, inbox, DLQ, outbox) and each service's contract."""

from __future__ import annotations

import asyncio
import uuid

from services.intake.domain import IntakeEvent
from services.intake.handlers import to_envelope
from shared.envelope import Envelope, utcnow
from shared.events import HandoffCreated, LeadRejected, SalAccepted, envelope_for
from shared.settings import Settings
from tests.support import ADMIN, eventually, good_fit_journey, producer, running, tap, unique_email


def intake_envelopes(events: list[dict]) -> list[Envelope]:
    return [to_envelope(IntakeEvent.model_validate(e), received_at=utcnow(), source="test") for e in events]


async def publish(settings: Settings, envelopes: list[Envelope], topic: str = "lead.events") -> None:
    async with producer(settings) as p:
        for envelope in envelopes:
            key = (envelope.identity or envelope.lead_id or "").encode()
            await p.send_and_wait(settings.topic_prefix + topic, envelope.to_bytes(), key=key)


async def lead_by_email(client, email: str) -> dict | None:
    items = (await client.get("/v1/leads", params={"email": email}, headers=ADMIN)).json()["items"]
    return items[0] if items else None


async def test_good_fit_lead_becomes_mql_with_its_explanation(settings: Settings) -> None:
    email = unique_email()
    lifecycle_topic = settings.topic_prefix + "lead.lifecycle"
    async with running("scoring", settings) as scoring, tap(settings, lifecycle_topic) as lifecycle:
        await publish(settings, intake_envelopes(good_fit_journey(email)))
        [mql] = await lifecycle.wait_for("lead.mql_reached")
        assert mql.data["cycle"] == 1
        assert mql.data["grade"] in {"A", "B"}
        assert any(c["rule"].startswith("engagement.") for c in mql.data["explanation"])
        lead = await eventually(lambda: lead_by_email(scoring.client, email.upper()))
        assert lead["stage"] == "mql"
        assert lead["lead_id"] == mql.lead_id
        assert lead["explanation"] == mql.data["explanation"]
        one = await scoring.client.get(f"/v1/leads/{lead['lead_id']}", headers=ADMIN)
        assert one.json()["events_count"] == 4
        missing = await scoring.client.get("/v1/leads/nope", headers=ADMIN)
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"


async def test_redelivered_event_is_scored_once(settings: Settings) -> None:
    email = unique_email()
    [event] = intake_envelopes(good_fit_journey(email)[:1])
    async with running("scoring", settings) as scoring:
        await publish(settings, [event, event])
        lead = await eventually(lambda: lead_by_email(scoring.client, email))
        await asyncio.sleep(1.0)
        lead = await lead_by_email(scoring.client, email)
        assert lead["events_count"] == 1


async def test_poison_message_goes_to_dead_letter_topic_and_consumer_goes_on(settings: Settings) -> None:
    email = unique_email()
    async with (
        running("scoring", settings) as scoring,
        tap(settings, settings.topic_prefix + "lead.events.dlq") as dlq,
    ):
        async with producer(settings) as p:
            await p.send_and_wait(settings.topic_prefix + "lead.events", b"{not json", key=b"x")
            bad_payload = envelope_for(
                HandoffCreated(
                    handoff_id="h", cycle=1, owner="q", policy="p", decide_by=utcnow(), score=1, grade="A"
                ),
                source="test",
                lead_id="l",
            ).model_copy(update={"type": "lead.event"})
            await p.send_and_wait(settings.topic_prefix + "lead.events", bad_payload.to_bytes(), key=b"y")
        await publish(settings, intake_envelopes(good_fit_journey(email)[:1]))
        await eventually(lambda: lead_by_email(scoring.client, email))
        await eventually(lambda: len(dlq.records) >= 2 or None)
        [garbage] = [r for r in dlq.records if r.value == b"{not json"]
        [wrong_shape] = [r for r in dlq.records if r.value == bad_payload.to_bytes()]
        headers = dict(garbage.headers)
        assert headers["source_topic"] == (settings.topic_prefix + "lead.events").encode()
        assert b"json" in headers["error"].lower()
        assert dict(wrong_shape.headers)["error_type"] == b"ValidationError"


async def test_anonymous_history_merges_into_the_known_lead(settings: Settings) -> None:
    email = unique_email()
    anonymous_id = f"anon-{uuid.uuid4().hex[:8]}"
    views = [
        {
            "type": "page_view",
            "occurred_at": utcnow().isoformat(),
            "anonymous_id": anonymous_id,
            "properties": {"url": "https://leadflow.example/pricing"},
        }
        for _ in range(3)
    ]
    identify = {
        "type": "identify",
        "occurred_at": utcnow().isoformat(),
        "anonymous_id": anonymous_id,
        "email": email,
    }
    async with running("scoring", settings) as scoring:
        await publish(settings, intake_envelopes(views))
        await asyncio.sleep(1.0)
        await publish(settings, intake_envelopes([identify]))
        lead = await eventually(lambda: lead_by_email(scoring.client, email))
        lead = await eventually(lambda: _with_events(scoring.client, email, 4))
        all_leads = (await scoring.client.get("/v1/leads", headers=ADMIN)).json()["items"]
        assert len(all_leads) == 1
        assert lead["events_count"] == 4


async def _with_events(client, email: str, count: int) -> dict | None:
    lead = await lead_by_email(client, email)
    return lead if lead and lead["events_count"] == count else None


async def test_mql_opens_a_handoff_and_decisions_emit_lifecycle_events(settings: Settings) -> None:
    email = unique_email()
    lifecycle_topic = settings.topic_prefix + "lead.lifecycle"
    async with (
        running("scoring", settings),
        running("handoff", settings) as handoff,
        tap(settings, lifecycle_topic) as lifecycle,
    ):
        await publish(settings, intake_envelopes(good_fit_journey(email)))
        [created] = await lifecycle.wait_for("handoff.created")
        handoff_id = created.data["handoff_id"]
        assert created.data["policy"] == "hot"  # a demo request just before the MQL
        item = (await handoff.client.get(f"/v1/handoffs/{handoff_id}", headers=ADMIN)).json()
        assert item["stage"] == "mql"
        assert item["lead"]["email"] == email
        assert item["explanation"]
        assert item["allowed_actions"] == ["accept", "reject", "disqualify"]
        queue = (await handoff.client.get("/v1/handoffs", params={"status": "mql"}, headers=ADMIN)).json()
        assert [h["handoff_id"] for h in queue["items"]] == [handoff_id]

        no_reason = await handoff.client.post(f"/v1/handoffs/{handoff_id}/reject", json={}, headers=ADMIN)
        assert no_reason.status_code == 422
        assert no_reason.json()["errors"][0]["field"] == "reason"
        other = await handoff.client.post(
            f"/v1/handoffs/{handoff_id}/reject", json={"reason": "other"}, headers=ADMIN
        )
        assert other.status_code == 422
        assert other.json()["errors"][0]["field"] == "note"
        too_early = await handoff.client.post(f"/v1/handoffs/{handoff_id}/qualify", headers=ADMIN)
        assert too_early.status_code == 409
        assert too_early.json()["current_stage"] == "mql"

        rejected = await handoff.client.post(
            f"/v1/handoffs/{handoff_id}/reject", json={"reason": "not_a_fit"}, headers=ADMIN
        )
        assert rejected.status_code == 200
        assert rejected.json()["stage"] == "returned"
        [event] = await lifecycle.wait_for("lead.rejected")
        assert event.data["reason"] == "not_a_fit"
        assert event.lead_id == created.lead_id
        again = await handoff.client.post(f"/v1/handoffs/{handoff_id}/accept", headers=ADMIN)
        assert again.status_code == 409
        history = (await handoff.client.get(f"/v1/handoffs/{handoff_id}/history", headers=ADMIN)).json()
        assert [(h["action"], h["to_stage"]) for h in history] == [("create", "mql"), ("reject", "returned")]


async def test_redelivered_mql_opens_one_handoff(settings: Settings) -> None:
    email = unique_email()
    async with (
        running("scoring", settings),
        tap(settings, settings.topic_prefix + "lead.lifecycle") as lifecycle,
    ):
        await publish(settings, intake_envelopes(good_fit_journey(email)))
        [mql] = await lifecycle.wait_for("lead.mql_reached")
    async with running("handoff", settings) as handoff:
        await publish(settings, [mql, mql], topic="lead.lifecycle")
        await eventually(lambda: _handoffs(handoff.client))
        await asyncio.sleep(1.0)
        assert len(await _handoffs(handoff.client)) == 1


async def _handoffs(client) -> list[dict]:
    return (await client.get("/v1/handoffs", headers=ADMIN)).json()["items"]


async def test_rejected_lead_returns_to_nurture_in_a_new_cycle(settings: Settings) -> None:
    email = unique_email()
    async with (
        running("scoring", settings) as scoring,
        tap(settings, settings.topic_prefix + "lead.lifecycle") as lc,
    ):
        await publish(settings, intake_envelopes(good_fit_journey(email)))
        [mql] = await lc.wait_for("lead.mql_reached")
        rejection = envelope_for(
            LeadRejected(
                handoff_id="h1",
                cycle=1,
                from_stage="mql",
                to_stage="returned",
                actor="rep",
                owner="q",
                policy="hot",
                in_time=True,
                reason="not_ready",
            ),
            source="test",
            lead_id=mql.lead_id,
        )
        await publish(settings, [rejection], topic="lead.lifecycle")
        lead = await eventually(lambda: _in_stage(scoring.client, email, "nurture"))
        assert lead["cycle"] == 2
        # It must cross the threshold again: the next event re-qualifies it in cycle 2.
        await publish(settings, intake_envelopes(good_fit_journey(email)[:1]))
        second = await lc.wait_for("lead.mql_reached", count=2)
        assert second[1].data["cycle"] == 2


async def _in_stage(client, email: str, stage: str) -> dict | None:
    lead = await lead_by_email(client, email)
    return lead if lead and lead["stage"] == stage else None


async def test_return_rate_above_threshold_raises_one_alert_and_resolves_once(settings: Settings) -> None:
    def created(i: int) -> Envelope:
        return envelope_for(
            HandoffCreated(
                handoff_id=f"h{i}",
                cycle=1,
                owner="q",
                policy="standard",
                decide_by=utcnow(),
                score=60,
                grade="A",
            ),
            source="test",
            lead_id=f"lead-{i}",
        )

    def decision(i: int, rejected: bool) -> Envelope:
        model = LeadRejected if rejected else SalAccepted
        return envelope_for(
            model(
                handoff_id=f"h{i}",
                cycle=1,
                from_stage="mql",
                to_stage="returned" if rejected else "sal",
                actor="rep",
                owner="q",
                policy="standard",
                in_time=True,
                reason="not_a_fit" if rejected else None,
            ),
            source="test",
            lead_id=f"lead-{i}",
        )

    async with (
        running("feedback", settings) as feedback,
        tap(settings, settings.topic_prefix + "ops.alerts") as alerts,
    ):
        first = [created(i) for i in range(20)] + [decision(i, rejected=i < 3) for i in range(20)]
        await publish(settings, first, topic="lead.lifecycle")
        [raised] = await alerts.wait_for("alert.raised")
        assert raised.data["numerator"] == 3 and raised.data["denominator"] == 20
        assert raised.data["severity"] == "watch"  # 15% but the interval still includes 10%
        rate = (await feedback.client.get("/v1/metrics/return-rate?window=30d", headers=ADMIN)).json()
        assert (rate["numerator"], rate["denominator"], rate["rate"]) == (3, 20, 0.15)
        assert 0.05 < rate["ci_low"] < 0.06 and 0.36 < rate["ci_high"] < 0.37

        more = [created(i) for i in range(20, 30)] + [decision(i, rejected=False) for i in range(20, 30)]
        await publish(settings, more, topic="lead.lifecycle")
        [resolved] = await alerts.wait_for("alert.resolved")
        assert resolved.data["rate"] == 0.1
        await asyncio.sleep(2.0)  # the alert timer runs meanwhile and must not repeat either event
        assert len(alerts.envelopes("alert.raised")) == 1
        assert len(alerts.envelopes("alert.resolved")) == 1
        listed = (await feedback.client.get("/v1/alerts", headers=ADMIN)).json()["items"]
        assert [(a["alert_key"], a["status"]) for a in listed] == [("return_rate:overall", "resolved")]
        bad = await feedback.client.get("/v1/metrics/return-rate?window=forever", headers=ADMIN)
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "window"
