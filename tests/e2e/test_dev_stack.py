"""The product contract end to end: separate processes, real HTTP, real Kafka, real Postgres."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid

import httpx
import psutil

from tests.e2e.conftest import DevStack, dev_env, start_dev, stop_dev, wait_for_banner
from tests.support import eventually, good_fit_journey, loopback_client, now_minus, tap, unique_email


async def lead_of(http: httpx.AsyncClient, stack: DevStack, email: str) -> dict | None:
    """The lead as scoring shows it; None while scoring is unreachable (being restarted)."""
    try:
        response = await http.get(
            f"{stack.url('scoring')}/v1/leads", params={"email": email}, headers=stack.headers
        )
    except httpx.TransportError:
        return None
    items = response.json()["items"]
    return items[0] if items else None


async def test_good_fit_lead_is_handed_off_rejected_and_recycled(
    stack: DevStack, http: httpx.AsyncClient
) -> None:
    email = unique_email("ada")
    trace_id = uuid.uuid4().hex
    async with tap(stack.settings, stack.settings.topic_prefix + "lead.lifecycle") as lifecycle:
        posted = await http.post(
            f"{stack.url('intake')}/v1/events/batch",
            json={"events": good_fit_journey(email)},
            headers={**stack.headers, "X-Trace-Id": trace_id},
        )
        assert posted.status_code == 202

        lead = await eventually(lambda: _stage(http, stack, email, "mql"), timeout=30)
        [mql] = await lifecycle.wait_for("lead.mql_reached", lambda e: e.lead_id == lead["lead_id"])
        [created] = await lifecycle.wait_for("handoff.created", lambda e: e.lead_id == lead["lead_id"])
        assert mql.trace_id == created.trace_id == trace_id  # one trace from the HTTP request on

        handoff_id = created.data["handoff_id"]
        handoff = (
            await http.get(f"{stack.url('handoff')}/v1/handoffs/{handoff_id}", headers=stack.headers)
        ).json()
        assert handoff["stage"] == "mql" and handoff["explanation"] == lead["explanation"]
        rejected = await http.post(
            f"{stack.url('handoff')}/v1/handoffs/{handoff_id}/reject",
            json={"reason": "not_ready", "note": "no budget this year"},
            headers=stack.headers,
        )
        assert rejected.status_code == 200

        recycled = await eventually(lambda: _stage(http, stack, email, "nurture"), timeout=30)
        assert recycled["cycle"] == 2

        async def counted() -> dict | None:
            url = f"{stack.url('feedback')}/v1/metrics/return-rate"
            rate = (await http.get(url, params={"window": "30d"}, headers=stack.headers)).json()
            return rate if rate["numerator"] >= 1 else None

        rate = await eventually(counted, timeout=30)
        assert rate["denominator"] >= rate["numerator"] >= 1
        assert rate["ci_low"] is not None


async def _stage(http: httpx.AsyncClient, stack: DevStack, email: str, stage: str) -> dict | None:
    lead = await lead_of(http, stack, email)
    return lead if lead and lead["stage"] == stage else None


async def test_the_same_event_sent_twice_is_scored_once(stack: DevStack, http: httpx.AsyncClient) -> None:
    email = unique_email("twice")
    event = good_fit_journey(email)[0]
    for _ in range(2):
        response = await http.post(f"{stack.url('intake')}/v1/events", json=event, headers=stack.headers)
        assert response.status_code == 202
    await eventually(lambda: lead_of(http, stack, email), timeout=30)
    await asyncio.sleep(2.0)
    lead = await lead_of(http, stack, email)
    assert lead is not None and lead["events_count"] == 1


async def test_bad_events_get_problem_details(stack: DevStack, http: httpx.AsyncClient) -> None:
    url = f"{stack.url('intake')}/v1/events"
    event = good_fit_journey(unique_email())[3]
    missing_property = await http.post(url, json={**event, "properties": {}}, headers=stack.headers)
    assert missing_property.status_code == 422
    assert missing_property.headers["content-type"] == "application/problem+json"
    assert missing_property.json()["errors"][0]["field"] == "properties.form_id"
    not_json = await http.post(
        url, content=b"{oops", headers={**stack.headers, "content-type": "application/json"}
    )
    assert not_json.status_code == 422
    no_key = await http.post(url, json=event)
    assert no_key.status_code == 401


async def test_scoring_killed_mid_batch_loses_and_duplicates_nothing(
    stack: DevStack, http: httpx.AsyncClient
) -> None:
    leads = [unique_email(f"kill{i}") for i in range(50)]
    events = [
        {
            "event_id": f"k-{uuid.uuid4().hex}",
            "type": "page_view",
            "occurred_at": now_minus(10 - n),
            "email": email,
            "properties": {"url": f"https://leadflow.example/blog/{n}"},
        }
        for email in leads
        for n in range(10)
    ]
    scoring_pid = stack.state()["pids"]["scoring"]
    response = await http.post(
        f"{stack.url('intake')}/v1/events/batch", json={"events": events}, headers=stack.headers
    )
    assert response.status_code == 202

    async def scoring_started() -> bool:
        return any([await lead_of(http, stack, email) for email in leads[:5]]) or None

    await eventually(scoring_started, timeout=30)
    os.kill(scoring_pid, signal.SIGKILL)
    await eventually(lambda: stack.state()["pids"]["scoring"] != scoring_pid or None, timeout=30)

    async def all_counted() -> bool | None:
        counts = [((await lead_of(http, stack, email)) or {}).get("events_count") for email in leads]
        return all(c == 10 for c in counts) or None

    await eventually(all_counted, timeout=90)
    await asyncio.sleep(2.0)
    assert await all_counted()


async def test_embedded_default_starts_everything_and_stops_clean(tmp_path) -> None:
    """What `make run` does on a fresh machine: own broker, own Postgres, demo traffic on."""
    env = dev_env(tmp_path / "data", LEADFLOW_DEMO="1", LEADFLOW_DEMO_RATE="20")
    log = tmp_path / "dev.out"
    process = start_dev(env, log)
    try:
        await wait_for_banner(process, log)
        banner = log.read_text()
        for port_var in ("LEADFLOW_INTAKE_PORT", "LEADFLOW_HANDOFF_PORT", "LEADFLOW_FEEDBACK_PORT"):
            assert f"http://127.0.0.1:{env[port_var]}" in banner
        key = (tmp_path / "data" / "admin-key").read_text().strip()
        assert f"admin key {key}" in banner
        for holds_the_key in ("admin-key", "dev.json"):  # readable by their owner alone
            assert (tmp_path / "data" / holds_the_key).stat().st_mode & 0o077 == 0
        scoring = f"http://127.0.0.1:{env['LEADFLOW_SCORING_PORT']}/v1/leads"

        async def demo_leads_scored() -> list | None:
            async with loopback_client() as client:
                items = (await client.get(scoring, headers={"X-API-Key": key})).json()["items"]
            return items or None

        await eventually(demo_leads_scored, timeout=60)
        children = psutil.Process(process.pid).children(recursive=True)
        assert len(children) >= 6  # four services, the broker, Postgres (and the demo)
    finally:
        alive = stop_dev(process) if process.poll() is None else []
    assert process.returncode == 0
    assert alive == []
    assert not (tmp_path / "data" / "dev.json").exists()


async def test_the_python_client_works_a_reps_queue(stack: DevStack, http: httpx.AsyncClient) -> None:
    from leadflow.clients.handoff import ConflictError, HandoffClient

    email = unique_email("client")
    await http.post(
        f"{stack.url('intake')}/v1/events/batch",
        json={"events": good_fit_journey(email)},
        headers=stack.headers,
    )
    lead = await eventually(lambda: _stage(http, stack, email, "mql"), timeout=30)

    def work_the_queue() -> tuple[str, int, int]:
        with HandoffClient(stack.url("handoff"), api_key=stack.admin_key) as client:
            [mine] = [h for h in client.queue(status="mql", page_size=2) if h.lead_id == lead["lead_id"]]
            accepted = client.accept(mine)
            try:
                client.reject(mine, reason="not_a_fit")  # acting on the version seen before accepting
            except ConflictError as stale:
                stale_status = stale.status
            try:
                client.accept(accepted)
            except ConflictError as invalid:
                invalid_status = invalid.status
            return accepted.stage, stale_status, invalid_status

    stage, stale_status, invalid_status = await asyncio.to_thread(work_the_queue)
    assert (stage, stale_status, invalid_status) == ("sal", 412, 409)
