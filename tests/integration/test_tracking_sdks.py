"""The Tracking API driven by the real SDKs (`segment-analytics-python`, `rudder-sdk-python`),
against intake, scoring and feedback running as processes on the real broker and Postgres: a
site already on Segment or RudderStack sends to leadflow by changing its host."""

from __future__ import annotations

import asyncio
import base64
import gzip
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from rudderstack.analytics.client import Client as RudderClient
from segment.analytics.client import Client as SegmentClient
from segment.analytics.request import APIError

from tests.conftest import isolated_settings
from tests.support import ADMIN, eventually, loopback_client, service_ready, start_service

GOOD_FIT = {
    "name": "Grace Hopper",
    "title": "VP of Marketing",
    "company": {"name": "Northwind Software", "employee_count": 500, "industry": "Software"},
    "company_domain": "northwind-software.example",
    "country": "US",
}
PUBLIC_ORIGIN = "http://localhost:8123"


@dataclass
class Stack:
    intake: str
    scoring: str
    feedback: str
    write_key: str
    dsn: str  # scoring's database, for what no API shows (a lead known by no email yet)

    def segment(self, **options: Any) -> SegmentClient:
        return SegmentClient(self.write_key, host=self.intake, sync_mode=True, **options)

    def rudder(self, **options: Any) -> RudderClient:
        return RudderClient(self.write_key, host=self.intake, sync_mode=True, **options)


@pytest.fixture(scope="module")
async def stack(
    kafka_bootstrap: str, postgres_admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    settings = await isolated_settings(kafka_bootstrap, postgres_admin_url, tmp_path_factory.mktemp("data"))
    limits = {"LEADFLOW_RATE_LIMIT_PUBLIC_ADDRESS": "8/minute"}
    processes = {name: start_service(name, settings, **limits) for name in ("intake", "scoring", "feedback")}
    try:
        for _, url in processes.values():
            await eventually(lambda url=url: service_ready(url), timeout=60)
        intake = processes["intake"][1]
        async with loopback_client() as client:
            created = await client.post(
                f"{intake}/v1/keys", json={"name": "website", "scopes": ["events:write"]}, headers=ADMIN
            )
        dsn = settings.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        yield Stack(intake, processes["scoring"][1], processes["feedback"][1], created.json()["key"], dsn)
    finally:
        for process, _ in processes.values():
            process.terminate()
        for process, _ in processes.values():
            process.wait(timeout=30)


async def lead_of(stack: Stack, email: str) -> dict[str, Any] | None:
    async with loopback_client() as client:
        found = await client.get(f"{stack.scoring}/v1/leads", params={"email": email}, headers=ADMIN)
        items = found.json()["items"]
        return items[0] if items else None


async def timeline_of(stack: Stack, lead_id: str) -> list[dict[str, Any]]:
    async with loopback_client() as client:
        answer = await client.get(f"{stack.scoring}/v1/leads/{lead_id}/timeline", headers=ADMIN)
        return answer.json()


async def mql_with_history(stack: Stack, email: str, pages: int) -> dict[str, Any] | None:
    lead = await lead_of(stack, email)
    if lead is None or lead["stage"] != "mql":
        return None
    timeline = await timeline_of(stack, lead["lead_id"])
    viewed = [e for e in timeline if e["kind"] == "event" and e["event_type"] == "page_view"]
    return lead if len(viewed) >= pages else None


def visit_then_identify(client: Any, *, email: str, user_id: str, anonymous_id: str) -> None:
    """An anonymous visitor reads the pricing page twice, signs in, downloads a white paper and
    asks for a demo (the signed-in calls carry only the userId, as a backend sends them)."""
    for _ in range(2):
        client.page(
            anonymous_id=anonymous_id, name="Pricing", properties={"url": "https://ex.example/pricing"}
        )
    client.identify(user_id=user_id, anonymous_id=anonymous_id, traits={**GOOD_FIT, "email": email})
    client.track(user_id=user_id, event="Content Downloaded", properties={"content_id": "wp-2026"})
    client.track(user_id=user_id, event="Demo Requested", properties={"form_id": "demo"})


@pytest.mark.parametrize("sdk", ["segment", "rudder"])
async def test_an_anonymous_visitor_who_identifies_becomes_an_mql_with_their_page_views(
    stack: Stack, sdk: str
) -> None:
    email = f"grace.{uuid.uuid4().hex[:8]}@northwind-software.example"
    client = stack.segment() if sdk == "segment" else stack.rudder()
    await asyncio.to_thread(
        visit_then_identify,
        client,
        email=email,
        user_id=f"u-{uuid.uuid4().hex}",
        anonymous_id=uuid.uuid4().hex,
    )
    lead = await eventually(lambda: mql_with_history(stack, email, pages=2), timeout=30)
    assert lead["grade"] in {"A", "B"}
    timeline = await timeline_of(stack, lead["lead_id"])
    kinds = [e["event_type"] for e in timeline if e["kind"] == "event"]
    assert kinds.count("page_view") == 2
    assert {"identify", "content_download", "demo_request"} <= set(kinds)


async def test_the_sdks_batch_call_is_deduplicated_by_message_id(stack: Stack) -> None:
    email = f"dup.{uuid.uuid4().hex[:8]}@northwind-software.example"
    client = stack.segment()
    for _ in range(2):
        await asyncio.to_thread(
            client.track,
            user_id=email,
            event="demo request",
            properties={"form_id": "d"},
            message_id="m-dup-1",
        )
    lead = await eventually(lambda: lead_of(stack, email))
    await asyncio.sleep(1.0)
    lead = await lead_of(stack, email)
    assert lead is not None and lead["events_count"] == 1


async def test_a_wrong_write_key_is_a_401_the_sdks_report(stack: Stack) -> None:
    wrong = SegmentClient("lf_00000000_" + "x" * 43, host=stack.intake, sync_mode=True)
    with pytest.raises(APIError) as raised:
        await asyncio.to_thread(
            wrong.track, user_id="u1", event="Demo Requested", properties={"form_id": "f"}
        )
    assert raised.value.status == 401
    errors: list[Exception] = []
    rudder = RudderClient(
        "not-a-key", host=stack.intake, on_error=lambda e, batch: errors.append(e), max_retries=0
    )
    rudder.track(user_id="u1", event="Demo Requested", properties={"form_id": "f"})
    await asyncio.to_thread(rudder.flush)
    await asyncio.to_thread(rudder.join)
    assert errors and getattr(errors[0], "status", None) == 401


async def test_over_limit_messages_and_batches_are_refused(stack: Stack) -> None:
    basic = {"Authorization": "Basic " + base64.b64encode(f"{stack.write_key}:".encode()).decode()}
    message = {"userId": "u1", "event": "Demo Requested", "properties": {"form_id": "f", "x": "y" * 33_000}}
    async with loopback_client(base_url=stack.intake, headers=basic) as client:
        single = await client.post("/v1/track", json=message)
        assert single.status_code == 413
        assert single.headers["content-type"] == "application/problem+json"
        assert single.json()["errors"][0]["rule"] == "max_bytes"
        in_batch = await client.post(
            "/v1/batch", json={"batch": [{**message, "type": "track"}, {"type": "page"}]}
        )
        assert in_batch.status_code == 413
        assert in_batch.json()["errors"][0] == {
            "field": "batch.0",
            "rule": "max_message_bytes",
            "message": "a message holds at most 32 KB",
        }
        small = {"type": "track", "userId": "u1", "event": "x", "properties": {"t": "z" * 20_000}}
        too_big = await client.post("/v1/batch", json={"batch": [small] * 26})
        assert too_big.status_code == 413
        bomb = gzip.compress(orjson.dumps({"batch": [small] * 200}))
        zipped = await client.post("/v1/batch", content=bomb, headers={"Content-Encoding": "gzip"})
        assert zipped.status_code == 413


async def test_a_mixed_batch_processes_the_good_and_lists_the_rest_as_failed_events(stack: Stack) -> None:
    email = f"mixed.{uuid.uuid4().hex[:8]}@northwind-software.example"
    launch = f"Spaceship Launched {uuid.uuid4().hex[:6]}"
    client = SegmentClient(stack.write_key, host=stack.intake, upload_size=10, max_retries=0)
    client.identify(user_id=email, traits=GOOD_FIT)
    client.track(user_id=email, event=launch, properties={"seats": 3})
    client.track(user_id=email, event="Demo Requested", properties={})  # the plan requires form_id
    client.track(user_id=email, event="Demo Requested", properties={"form_id": "demo"})
    await asyncio.to_thread(client.flush)
    lead = await eventually(lambda: lead_of(stack, email))
    assert await eventually(lambda: _events_count_is(stack, email, 2))
    assert lead["email"] == email
    groups = await eventually(
        lambda: failed_groups(stack, lambda g: g["event"] in (launch, "Demo Requested"))
    )
    unmapped = next(g for g in groups if g["event"] == launch)
    assert unmapped["reason"] == "unmapped_event" and unmapped["count"] == 1
    assert unmapped["sample"]["userId"] == "[redacted]"
    assert email not in orjson.dumps(groups).decode()
    missing = next(g for g in groups if g["event"] == "Demo Requested")
    assert (missing["reason"], missing["field"]) == ("required_by_tracking_plan", "properties.form_id")
    async with loopback_client() as http:
        metrics = (await http.get(f"{stack.intake}/metrics", headers=ADMIN)).text
    assert 'leadflow_intake_tracking_failed_total{reason="unmapped_event"}' in metrics


async def _events_count_is(stack: Stack, email: str, count: int) -> bool:
    lead = await lead_of(stack, email)
    return lead is not None and lead["events_count"] == count


async def failed_groups(
    stack: Stack, wanted: Callable[[dict[str, Any]], bool], least: int = 2
) -> list[dict[str, Any]] | None:
    async with loopback_client() as client:
        answer = await client.get(f"{stack.feedback}/v1/failed-events", headers=ADMIN)
    groups = [g for g in answer.json()["items"] if wanted(g)]
    return groups if len(groups) >= least else None


async def test_a_contract_breaking_message_is_accepted_and_listed_not_refused(stack: Stack) -> None:
    basic = {"Authorization": "Basic " + base64.b64encode(f"{stack.write_key}:".encode()).decode()}
    nobody = {"type": "track", "event": "Demo Requested", "messageId": f"m-{uuid.uuid4().hex}"}
    async with loopback_client(base_url=stack.intake, headers=basic) as client:
        answer = await client.post("/v1/batch", json={"batch": [nobody, "not a message"]})
    assert answer.status_code == 200
    assert answer.json() == {"success": True, "accepted": 0, "failed": 2}
    groups = await eventually(
        lambda: failed_groups(stack, lambda g: g["reason"] in ("identity_required", "not_an_object"))
    )
    assert {g["reason"] for g in groups} == {"identity_required", "not_an_object"}


async def test_a_public_key_sends_from_its_origins_only_and_reads_nothing(stack: Stack) -> None:
    async with loopback_client() as client:
        created = await client.post(
            f"{stack.intake}/v1/keys",
            json={
                "name": "site",
                "scopes": ["events:write"],
                "public": True,
                "allowed_origins": [PUBLIC_ORIGIN],
            },
            headers=ADMIN,
        )
        key = created.json()["key"]
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        }
        allowed = await eventually(
            lambda: _preflight_allowed(client, stack.intake, PUBLIC_ORIGIN, preflight), timeout=15
        )
        assert allowed.headers["access-control-allow-origin"] == PUBLIC_ORIGIN
        other = await client.options(
            f"{stack.intake}/v1/t", headers={**preflight, "Origin": "http://evil.example"}
        )
        assert other.status_code == 403 and "access-control-allow-origin" not in other.headers
        page = {"type": "page", "anonymousId": uuid.uuid4().hex, "properties": {"url": "https://ex.example/"}}
        auth = {"Authorization": f"Bearer {key}"}
        sent = await client.post(f"{stack.intake}/v1/p", json=page, headers={**auth, "Origin": PUBLIC_ORIGIN})
        assert sent.status_code == 200 and sent.headers["access-control-allow-origin"] == PUBLIC_ORIGIN
        foreign = await client.post(
            f"{stack.intake}/v1/p", json=page, headers={**auth, "Origin": "http://evil.example"}
        )
        assert foreign.status_code == 403
        no_origin = await client.post(f"{stack.intake}/v1/p", json=page, headers=auth)
        assert no_origin.status_code == 403
        reading = await client.get(f"{stack.feedback}/v1/failed-events", headers=auth)
        assert reading.status_code == 403
        statuses = [
            (
                await client.post(
                    f"{stack.intake}/v1/p", json=page, headers={**auth, "Origin": PUBLIC_ORIGIN}
                )
            ).status_code
            for _ in range(8)
        ]
        assert 429 in statuses  # this address's quota for the key: 8 a minute


async def _preflight_allowed(
    client: httpx.AsyncClient, intake: str, origin: str, headers: dict[str, str]
) -> httpx.Response | None:
    answer = await client.options(f"{intake}/v1/t", headers={**headers, "Origin": origin})
    return answer if answer.status_code == 204 else None


async def test_the_readme_lines_point_each_sdks_default_client_at_intake(stack: Stack) -> None:
    import rudderstack.analytics as rudder_analytics
    import segment.analytics as analytics

    analytics.write_key = stack.write_key
    analytics.host = stack.intake
    rudder_analytics.write_key = stack.write_key
    rudder_analytics.dataPlaneUrl = stack.intake
    emails = [f"readme.{sdk}.{uuid.uuid4().hex[:6]}@northwind-software.example" for sdk in ("s", "r")]
    for module, email in zip((analytics, rudder_analytics), emails, strict=True):
        module.track(email, "Signed Up", {})
        await asyncio.to_thread(module.flush)
    for email in emails:
        assert await eventually(lambda email=email: lead_of(stack, email))


async def lead_by_id(stack: Stack, lead_id: str) -> dict[str, Any]:
    async with loopback_client() as client:
        return (await client.get(f"{stack.scoring}/v1/leads/{lead_id}", headers=ADMIN)).json()


async def timeline_holding(stack: Stack, email: str, types: list[str]) -> list[str] | None:
    lead = await lead_of(stack, email)
    if lead is None:
        return None
    kinds = sorted(e["event_type"] for e in await timeline_of(stack, lead["lead_id"]) if e["kind"] == "event")
    return kinds if all(kinds.count(t) >= types.count(t) for t in set(types)) else None


async def test_an_alias_to_a_new_opaque_id_keeps_one_lead_with_the_whole_timeline(stack: Stack) -> None:
    """anonymous → identify(userId) → alias(new userId) → track with only the new id; the
    calls with only a userId come before the identify too, on other partitions (other keys)."""
    email = f"alias.{uuid.uuid4().hex[:8]}@northwind-software.example"
    first, second, browser = f"u-{uuid.uuid4().hex}", f"u-{uuid.uuid4().hex}", uuid.uuid4().hex
    client = stack.segment()

    def journey() -> None:
        client.page(anonymous_id=browser, name="Pricing", properties={"url": "https://ex.example/pricing"})
        client.track(user_id=first, event="Content Downloaded", properties={"content_id": "wp-1"})
        client.identify(user_id=first, anonymous_id=browser, traits={**GOOD_FIT, "email": email})
        client.alias(previous_id=first, user_id=second)
        client.track(user_id=second, event="Demo Requested", properties={"form_id": "demo"})

    await asyncio.to_thread(journey)
    wanted = ["page_view", "content_download", "demo_request"]
    kinds = await eventually(lambda: timeline_holding(stack, email, wanted), timeout=30)
    assert {"page_view", "content_download", "identify", "demo_request"} <= set(kinds)
    lead = await lead_of(stack, email)
    assert lead is not None
    await asyncio.to_thread(
        client.track, user_id=second, event="Demo Requested", properties={"form_id": "d2"}
    )
    more = await eventually(lambda: timeline_holding(stack, email, [*wanted, "demo_request"]), timeout=30)
    assert more.count("demo_request") == 2  # the new id keeps finding the same lead
    assert (await lead_of(stack, email) or {})["lead_id"] == lead["lead_id"]


async def test_an_alias_between_two_people_known_by_email_is_a_failed_event_not_a_merge(stack: Stack) -> None:
    run = uuid.uuid4().hex[:8]
    ada, bob = f"ada.{run}@northwind-software.example", f"bob.{run}@northwind-software.example"
    client = stack.segment()

    def two_people() -> None:
        client.identify(user_id=f"ada-{run}", traits={"email": ada})
        client.identify(user_id=f"bob-{run}", traits={"email": bob})

    await asyncio.to_thread(two_people)
    # Both known first: an alias consumed before the identifies (another key, another partition)
    # would meet two anonymous ids, not two people.
    first, second = [await eventually(lambda e=e: lead_of(stack, e)) for e in (ada, bob)]
    await asyncio.to_thread(client.alias, previous_id=f"ada-{run}", user_id=f"bob-{run}")
    groups = await eventually(
        lambda: failed_groups(stack, lambda g: g["reason"] == "alias_conflict", least=1)
    )
    assert groups[0]["field"] == "previousId" and groups[0]["message_type"] == "alias"
    assert first["lead_id"] != second["lead_id"]
    assert [(await lead_of(stack, e) or {}).get("lead_id") for e in (ada, bob)] == [
        first["lead_id"],
        second["lead_id"],
    ]


async def test_a_group_call_links_the_person_to_the_account_whose_external_id_is_the_group_id(
    stack: Stack,
) -> None:
    run = uuid.uuid4().hex[:8]
    email = f"kim.{run}@gmail.com"  # free mail: no domain to match by
    async with loopback_client() as http:
        put = await http.put(
            f"{stack.scoring}/v1/accounts/acct-{run}",
            json={
                "name": f"Contoso {run}",
                "domains": [f"contoso-{run}.example"],
                "external_id": f"crm-{run}",
            },
            headers=ADMIN,
        )
        assert put.status_code in (200, 201), put.text
    client = stack.segment()

    def identify_then_group() -> None:
        client.identify(user_id=f"kim-{run}", traits={"email": email, "title": "VP of Marketing"})
        client.group(user_id=f"kim-{run}", group_id=f"crm-{run}", traits={"name": "Contoso Ltd"})

    await asyncio.to_thread(identify_then_group)

    async def matched() -> dict[str, Any] | None:
        lead = await lead_of(stack, email)
        account = (await lead_by_id(stack, lead["lead_id"])).get("account") if lead else None
        return account if account and account["matched_by"] == "group_id" else None

    account = await eventually(matched, timeout=30)
    assert (account["account_id"], account["confidence"]) == (f"acct-{run}", 1.0)


async def test_traits_a_user_id_only_person_gave_survive_the_merge_into_their_email(stack: Stack) -> None:
    run = uuid.uuid4().hex[:8]
    email, user_id = f"lin.{run}@northwind-software.example", f"u-{run}"
    client = stack.segment()
    await asyncio.to_thread(client.track, user_id=email, event="Signed Up")  # known by email first
    await eventually(lambda: lead_of(stack, email))

    traits = {"title": "VP of Marketing", "company": "Northwind Software"}
    await asyncio.to_thread(client.identify, user_id=user_id, traits=traits)
    await eventually(lambda: lead_of_user_id(stack, user_id))  # a lead of its own, stored
    await asyncio.to_thread(client.identify, user_id=user_id, traits={"email": email})

    async def merged() -> dict[str, Any] | None:
        lead = await lead_of(stack, email)
        return lead if lead and lead["events_count"] == 3 else None

    lead = await eventually(merged)
    kept = (await lead_by_id(stack, lead["lead_id"]))["traits"]
    assert (kept["title"], kept["company"]) == ("VP of Marketing", "Northwind Software")
    assert await lead_of_user_id(stack, user_id) == lead["lead_id"]


async def lead_of_user_id(stack: Stack, user_id: str) -> str | None:
    conn = await asyncpg.connect(stack.dsn)
    try:
        return await conn.fetchval(
            "SELECT lead_id FROM scoring.anonymous_ids WHERE anonymous_id = $1", f"user:{user_id}"
        )
    finally:
        await conn.close()
