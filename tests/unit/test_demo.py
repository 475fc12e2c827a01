"""The demo traffic: journeys that fit the tracking plan, and a loop that survives intake."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from leadflow.devstack.demo_traffic import PERSONA_WEIGHTS, PERSONAS, persona_journey, pick_persona, run_demo
from services.scoring.config_files import load_model
from services.scoring.domain import LeadEvent, meets_mql_rule, score_lead

CONFIG = Path(__file__).parents[2] / "config"
TRACKING_PLAN = CONFIG / "tracking-plan.yaml"
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
TRAIT_KEYS = {"first_name", "last_name", "title", "company", "company_domain", "company_size"}
TRAIT_KEYS |= {"department", "industry", "country", "channel"}


@pytest.fixture(scope="module")
def required_properties() -> dict[str, list[str]]:
    plan = yaml.safe_load(TRACKING_PLAN.read_text())
    return {name: spec.get("required_properties", []) for name, spec in plan["types"].items()}


def journeys(persona: str, count: int = 50, seed: int = 7) -> list[list[dict]]:
    rng = random.Random(seed)
    return [persona_journey(rng, persona, NOW) for _ in range(count)]


@pytest.mark.parametrize("persona", PERSONAS)
def test_every_event_satisfies_the_tracking_plan(persona, required_properties):
    for journey in journeys(persona):
        assert journey
        for event in journey:
            assert event["type"] in required_properties
            missing = set(required_properties[event["type"]]) - set(event["properties"])
            assert not missing, f"{event['type']} lacks {missing}"


@pytest.mark.parametrize("persona", PERSONAS)
def test_every_event_names_a_lead_and_happened_in_order_before_now(persona):
    for journey in journeys(persona):
        times = [datetime.fromisoformat(e["occurred_at"]) for e in journey]
        assert times == sorted(times)
        assert NOW - timedelta(days=4) < times[0] and times[-1] <= NOW
        assert all(e["occurred_at"].endswith("Z") for e in journey)
        for event in journey:
            assert event.get("email") or event.get("anonymous_id")
            assert set(event.get("traits", {})) <= TRAIT_KEYS
        assert len({e["event_id"] for e in journey}) == len(journey)


def test_good_fit_buyers_are_senior_at_mid_size_software_companies_and_ask_for_sales():
    for journey in journeys("good_fit_buyer"):
        assert journey[-1]["type"] in {"demo_request", "contact_sales"}
        traits = journey[-1]["traits"]
        assert traits["title"].startswith(("VP", "Director", "Head"))
        assert 200 <= traits["company_size"] <= 5000
        assert traits["country"] in {"US", "GB", "DE", "CA"}
        assert journey[-1]["email"].endswith("@" + traits["company_domain"])
        assert any(e["properties"].get("url", "").endswith("/pricing") for e in journey)


def test_partner_referrals_come_through_the_referral_channel():
    for journey in journeys("partner_referral"):
        assert {e["traits"]["channel"] for e in journey if "traits" in e} == {"referral"}


def test_students_use_gmail_and_download_content():
    for journey in journeys("student"):
        emails = {e["email"] for e in journey if "email" in e}
        assert emails and all(email.endswith("@gmail.com") for email in emails)
        assert journey[-1]["type"] == "content_download"
        assert journey[-1]["traits"]["title"] == "Student"


def test_procurement_views_pricing_then_contacts_sales_from_a_company_address():
    for journey in journeys("procurement"):
        *views, last = journey
        assert all(v["properties"]["url"].endswith("/pricing") for v in views)
        assert last["type"] == "contact_sales"
        assert last["traits"]["title"] in {"Procurement Specialist", "Purchasing Manager"}
        assert last["email"].endswith("@" + last["traits"]["company_domain"])


def test_tire_kickers_read_the_blog_anonymously_and_at_most_identify():
    identified = 0
    for journey in journeys("tire_kicker", count=200):
        assert {e["type"] for e in journey} <= {"page_view", "identify"}
        views = [e for e in journey if e["type"] == "page_view"]
        assert all("/blog/" in v["properties"]["url"] and "email" not in v for v in views)
        identified += any(e["type"] == "identify" and e.get("email") for e in journey)
    assert 0 < identified < 200


def qualifies(journey: list[dict], model) -> bool:
    """Score the journey's lead with the scoring domain, as of its last event."""
    traits: dict = {}
    for event in journey:
        traits |= event.get("traits", {})
    events = [
        LeadEvent(e["type"], datetime.fromisoformat(e["occurred_at"]), e["properties"]) for e in journey
    ]
    email = next((e["email"] for e in journey if "email" in e), None)
    return meets_mql_rule(model, score_lead(model, email=email, traits=traits, events=events, at=NOW))


@pytest.mark.parametrize("persona", PERSONAS)
def test_under_the_default_model_only_good_fit_leads_become_mqls(persona):
    model = load_model(CONFIG / "scoring-model.yaml")
    expected = persona in {"good_fit_buyer", "partner_referral"}
    assert all(qualifies(journey, model) == expected for journey in journeys(persona))


def test_a_fixed_seed_gives_the_same_traffic():
    def traffic(seed: int) -> list[dict]:
        rng = random.Random(seed)
        return [e for _ in range(20) for e in persona_journey(rng, pick_persona(rng), NOW)]

    assert traffic(42) == traffic(42)
    assert traffic(42) != traffic(43)


def test_pick_persona_follows_the_weights():
    rng = random.Random(3)
    counts = Counter(pick_persona(rng) for _ in range(10_000))
    assert set(counts) == set(PERSONAS)
    for persona, weight in PERSONA_WEIGHTS.items():
        assert abs(counts[persona] / 10_000 - weight) < 0.02, persona
    good_fit = counts["good_fit_buyer"] + counts["partner_referral"]
    assert abs(good_fit / 10_000 - 0.30) < 0.02


def test_an_unknown_persona_is_refused():
    with pytest.raises(ValueError, match="unknown persona"):
        persona_journey(random.Random(0), "astronaut", NOW)


class FakeIntake:
    """A loopback HTTP server that fails the first batch (503 by default) and accepts the rest."""

    def __init__(self, enough: int, first: str = "503 Service Unavailable") -> None:
        self.first = first
        self.requests: list[dict] = []
        self.accepted = 0
        self.auth: set[str] = set()
        self.enough, self.got_enough = enough, asyncio.Event()
        self.got_a_request = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while head := await reader.readuntil(b"\r\n\r\n"):
                await self.answer(head, reader, writer)
        writer.close()

    async def answer(self, head: bytes, reader, writer) -> None:
        lines = head.decode().split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        headers = {name.lower(): value for name, value in headers.items()}
        body = json.loads(await reader.readexactly(int(headers["content-length"])))
        self.requests.append({"line": lines[0], "events": body["events"]})
        self.auth.add(headers["authorization"])
        self.got_a_request.set()
        if len(self.requests) == 1:
            status = self.first
            answer = {"title": status[4:], "detail": "events.0.email: 'ana@x.example' is bad"}
        else:
            status, answer = "202 Accepted", {"accepted": len(body["events"])}
            self.accepted += len(body["events"])
        if self.accepted >= self.enough:
            self.got_enough.set()
        payload = json.dumps(answer).encode()
        head_out = f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        writer.write(f"{head_out}content-length: {len(payload)}\r\n\r\n".encode() + payload)
        await writer.drain()


async def run_until(done: asyncio.Event, handle, rate_per_s: float, logs: list) -> int:
    """Run the demo against a loopback server until `done`, then stop it: it must end in 1 s."""
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    stop = asyncio.Event()
    async with server:
        demo = asyncio.create_task(
            run_demo(url, "k3y", rate_per_s=rate_per_s, stop=stop, seed=1, log=logs.append)
        )
        async with asyncio.timeout(5):
            await done.wait()
        stop.set()
        async with asyncio.timeout(1):
            return await demo


async def test_run_demo_survives_a_failed_request_and_sends_the_batch_again():
    intake, logs = FakeIntake(enough=30), []
    sent = await run_until(intake.got_enough, intake.handle, rate_per_s=500, logs=logs)

    assert sent == intake.accepted >= 30
    assert intake.requests[0]["line"] == "POST /v1/events/batch HTTP/1.1"
    assert intake.requests[1]["events"] == intake.requests[0]["events"]
    assert intake.auth == {"Bearer k3y"}
    assert any("503" in line and "Service Unavailable" in line for line in logs)
    assert not any("@" in line for line in logs)


async def test_a_batch_intake_refuses_is_dropped_not_retried():
    intake, logs = FakeIntake(enough=1, first="422 Unprocessable Content"), []
    await run_until(intake.got_enough, intake.handle, rate_per_s=500, logs=logs)

    assert intake.requests[1]["events"] != intake.requests[0]["events"]
    assert any("422" in line and "dropping" in line for line in logs)
    assert not any("@" in line for line in logs)


async def test_stop_interrupts_the_wait_before_the_next_batch():
    intake = FakeIntake(enough=1)
    sent = await run_until(intake.got_a_request, intake.handle, rate_per_s=0.01, logs=[])
    assert sent == 0 and len(intake.requests) == 1


async def test_stop_abandons_a_request_that_intake_never_answers():
    reached = asyncio.Event()

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reached.set()
        await reader.read()  # until the client hangs up
        writer.close()

    assert await run_until(reached, swallow, rate_per_s=10, logs=[]) == 0
