"""intake over HTTP against the real broker: 202 for valid events, problem+json for bad ones,
and nothing invalid on `lead.events`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import orjson

from shared.db import make_engine
from shared.envelope import Envelope
from shared.sealing import SubjectKind
from shared.settings import Settings
from shared.vault import Vault
from tests.support import ADMIN, good_fit_journey, now_minus, running, tap, unique_email

PROBLEM = "application/problem+json"


async def test_valid_event_is_published_sealed_and_keyed_by_the_normalised_emails_keyed_hash(
    settings: Settings,
) -> None:
    async with (
        running("intake", settings) as intake,
        tap(settings, settings.topic_prefix + "lead.events") as events,
    ):
        event = good_fit_journey("  Ada.Lovelace@Northwind-Software.example ")[0]
        response = await intake.client.post(
            "/v1/events", json=event, headers={**ADMIN, "X-Trace-Id": "trace-123"}
        )
        assert response.status_code == 202
        assert response.json() == {"accepted": 1, "event_ids": [event["event_id"]]}
        [published] = await events.wait_for("lead.event")
        vault = Vault.of(settings)
        subject = vault.subject(SubjectKind.EMAIL, "ada.lovelace@northwind-software.example")
        assert published.identity == subject
        assert events.records[0].key == subject.encode()
        assert b"lovelace" not in events.records[0].value.lower()  # the address and traits are sealed
        assert published.data["email"] is None and published.data["subject"] == subject
        assert published.trace_id == "trace-123"
        engine = make_engine(settings, bounded=False)
        try:
            async with engine.connect() as conn:
                [opened] = await vault.open_envelopes(conn, [published])
        finally:
            await engine.dispose()
        assert isinstance(opened, Envelope)
        assert opened.data["email"] == "ada.lovelace@northwind-software.example"
        assert opened.data["traits"] == event["traits"]


async def test_batch_is_published_whole(settings: Settings) -> None:
    async with (
        running("intake", settings) as intake,
        tap(settings, settings.topic_prefix + "lead.events") as events,
    ):
        journey = good_fit_journey(unique_email())
        response = await intake.client.post("/v1/events/batch", json={"events": journey}, headers=ADMIN)
        assert response.status_code == 202
        assert response.json()["accepted"] == 4
        await events.wait_for("lead.event", count=4)


async def test_the_fast_path_and_the_declared_route_publish_the_same_event(settings: Settings) -> None:
    """A plain JSON body takes intake's fast path; a `+json` one the declared FastAPI route.
    Both answer alike and publish the same message (same id: the same event, sent twice)."""
    async with (
        running("intake", settings) as intake,
        tap(settings, settings.topic_prefix + "lead.events") as events,
    ):
        event = good_fit_journey(unique_email())[0]
        answers = [
            await intake.client.post(
                "/v1/events", content=orjson.dumps(event), headers={**ADMIN, "content-type": kind}
            )
            for kind in ("application/json", "application/vnd.leadflow+json")
        ]
        assert [a.status_code for a in answers] == [202, 202]
        assert (
            answers[0].content
            == answers[1].content
            == orjson.dumps({"accepted": 1, "event_ids": [event["event_id"]]})
        )
        assert all(a.headers["content-type"] == "application/json" for a in answers)
        fast, declared = await events.wait_for("lead.event", count=2)
        assert fast.id == declared.id
        # the same but for when each was received and the sealed box (a fresh nonce each time)
        differing = {"received_at", "sealed"}
        assert fast.data["sealed"] and declared.data["sealed"]
        assert {k: v for k, v in fast.data.items() if k not in differing} == {
            k: v for k, v in declared.data.items() if k not in differing
        }
        assert events.records[0].key == events.records[1].key


async def test_bad_events_get_problem_details_naming_field_and_rule(settings: Settings) -> None:
    good = good_fit_journey(unique_email())[3]
    cases = [
        ({**good, "email": None}, 422, "email", "identity_required"),
        ({**good, "type": "demo_requested"}, 422, "type", "tracking_plan_type"),
        ({**good, "properties": {}}, 422, "properties.form_id", "required_by_tracking_plan"),
        ({**good, "occurred_at": "yesterday"}, 422, "occurred_at", "datetime_from_date_parsing"),
        ({**good, "occurred_at": "2026-11-24T10:00:00"}, 422, "occurred_at", "timezone_aware"),
        ({**good, "occurred_at": now_minus(-60)}, 422, "occurred_at", "not_in_future"),
        ({**good, "email": "not-an-email"}, 422, "email", "email_format"),
        ({**good, "surprise": 1}, 422, "surprise", "extra_forbidden"),
    ]
    async with (
        running("intake", settings) as intake,
        tap(settings, settings.topic_prefix + "lead.events") as events,
    ):
        for body, status, field, rule in cases:
            response = await intake.client.post("/v1/events", json=body, headers=ADMIN)
            assert response.status_code == status, body
            assert response.headers["content-type"] == PROBLEM
            problem = response.json()
            assert problem["status"] == status
            assert {"field": field, "rule": rule} in [
                {k: e[k] for k in ("field", "rule")} for e in problem["errors"]
            ]
        await asyncio.sleep(1.0)
        assert events.records == []


async def test_a_batch_with_one_bad_event_publishes_nothing(settings: Settings) -> None:
    journey = good_fit_journey(unique_email())
    journey[2]["properties"] = {}
    async with (
        running("intake", settings) as intake,
        tap(settings, settings.topic_prefix + "lead.events") as events,
    ):
        response = await intake.client.post("/v1/events/batch", json={"events": journey}, headers=ADMIN)
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "events.2.properties.content_id"
        await asyncio.sleep(1.0)
        assert events.records == []


async def test_oversized_batch_and_body_are_refused(settings: Settings) -> None:
    event = good_fit_journey(unique_email())[0]
    async with running("intake", settings) as intake:
        too_many = await intake.client.post("/v1/events/batch", json={"events": [event] * 501}, headers=ADMIN)
        assert too_many.status_code == 413
        assert too_many.json()["errors"][0] == {
            "field": "events",
            "rule": "max_items",
            "message": "a batch holds at most 500 events",
        }
        huge = {**event, "properties": {"url": "x" * (settings.max_body_bytes + 10)}}
        too_big = await intake.client.post("/v1/events", json=huge, headers=ADMIN)
        assert too_big.status_code == 413
        assert too_big.headers["content-type"] == PROBLEM


async def test_api_keys_are_required_and_scoped(settings: Settings) -> None:
    from leadflow.admin.keys import create_key
    from shared.auth import Scope

    event = good_fit_journey(unique_email())[0]
    async with running("intake", settings) as intake:
        assert (await intake.client.post("/v1/events", json=event)).status_code == 401
        bad = await intake.client.post("/v1/events", json=event, headers={"X-API-Key": "lf_nope"})
        assert bad.status_code == 401
        reader, _ = await create_key(settings, name="dashboard", scopes=[Scope.METRICS_READ], owner=None)
        forbidden = await intake.client.post("/v1/events", json=event, headers={"X-API-Key": reader})
        assert forbidden.status_code == 403
        assert forbidden.json()["detail"] == "This call needs the 'events:write' scope."
        writer, _ = await create_key(settings, name="forms", scopes=[Scope.EVENTS_WRITE], owner=None)
        ok = await intake.client.post("/v1/events", json=event, headers={"Authorization": f"Bearer {writer}"})
        assert ok.status_code == 202


async def test_health_readiness_and_metrics(settings: Settings) -> None:
    async with running("intake", settings) as intake:
        assert (await intake.client.get("/healthz")).json() == {"status": "ok", "service": "intake"}
        ready = await intake.client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"postgres": "ok", "kafka": "ok"}
        await intake.client.post("/v1/events", json={"type": "nope"}, headers=ADMIN)
        assert (await intake.client.get("/metrics")).status_code == 401
        metrics = (await intake.client.get("/metrics", headers=ADMIN)).text
        assert "leadflow_http_requests_total" in metrics


def test_envelope_round_trips() -> None:
    raw = Envelope(
        id="1", type="lead.event", occurred_at="2026-11-24T10:00:00Z", source="t", trace_id="x", data={}
    ).to_bytes()
    assert Envelope.from_bytes(raw).id == "1"


async def test_keys_made_with_the_cli_authenticate_with_their_scopes(settings: Settings) -> None:
    env = {
        **os.environ,
        "LEADFLOW_DATABASE_URL": settings.database_url,
        "LEADFLOW_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "LEADFLOW_KAFKA_IDEMPOTENT_PRODUCER": str(settings.kafka_idempotent_producer).lower(),
    }
    made = subprocess.run(
        [sys.executable, "-m", "leadflow", "keys", "create", "--scope", "events:write", "--name", "website"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    key = made.stdout.strip()
    assert key.startswith("lf_") and "events:write" in made.stderr
    async with running("intake", settings) as intake:
        event = good_fit_journey(unique_email())[0]
        assert (
            await intake.client.post("/v1/events", json=event, headers={"X-API-Key": key})
        ).status_code == 202
    refused = subprocess.run(
        [sys.executable, "-m", "leadflow", "keys", "create", "--scope", "everything"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0 and "events:write" in refused.stderr
