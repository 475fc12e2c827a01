"""Scale-out, proven locally: two scoring, two handoff and two feedback processes give exactly
the final state one process of each gives, for 20,000 events of 2,000 leads, even when one
scoring and one handoff process are killed with SIGKILL halfway and their partitions move."""

from __future__ import annotations

import asyncio
import functools
import shutil
import signal
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import yaml

from leadflow.admin.migrations import migrate_all
from leadflow.devstack.postgres import create_database
from services.intake.domain import IntakeEvent
from services.intake.handlers import to_envelope
from shared.envelope import Envelope, utcnow
from shared.kafka import ensure_topics
from shared.settings import Settings
from tests.conftest import ROOT, database_url
from tests.support import ADMIN, eventually, loopback_client, producer, service_ready, start_service, tap

LEADS = 2_000
EVENTS_PER_LEAD = 10
START = datetime(2026, 11, 24, 8, tzinfo=UTC)
BUYER_STEPS = [
    *[("page_view", {"url": "https://leadflow.example/pricing"})] * 3,
    ("content_download", {"content_id": "whitepaper"}),
    ("webinar_attended", {"webinar_id": "w1"}),
    *[("page_view", {"url": f"https://leadflow.example/blog/{n}"}) for n in range(4)],
    ("demo_request", {"form_id": "demo"}),
]
# A review SLA of 7.2 s: every handoff warns and breaches while the test waits, soon after the last.
FAST_POLICY = {"name": "standard", "decide_within_hours": 0.002, "qualify_within_hours": 1, "warn_at": 0.5}


@functools.cache
def history(run: str) -> list[Envelope]:
    """Half the leads are buyers who qualify; the others only read the blog. Same history every
    run (built once: both pipelines are sent the same envelopes)."""
    envelopes = []
    for lead in range(LEADS):
        email = f"lead{lead}@company{lead % 97}.example"
        buyer = lead % 2 == 0
        traits = {
            "title": "VP of Marketing" if buyer else "Analyst",
            "company_size": 300 + lead % 700,
            "industry": "Software",
            "country": "JP",
        }
        for n in range(EVENTS_PER_LEAD):
            kind, properties = (
                BUYER_STEPS[n] if buyer else ("page_view", {"url": f"https://x.example/blog/{n}"})
            )
            event = IntakeEvent.model_validate(
                {
                    "event_id": f"{run}-{lead}-{n}",
                    "type": kind,
                    "email": email,
                    "traits": traits,
                    "occurred_at": (START + timedelta(minutes=n)).isoformat(),
                    "properties": properties,
                }
            )
            envelopes.append(to_envelope(event, received_at=utcnow(), source="test"))
    return envelopes


async def fresh(settings: Settings, postgres_admin_url: str, name: str) -> Settings:
    suffix = uuid.uuid4().hex[:8]
    await create_database(postgres_admin_url, f"{name}_{suffix}")
    run = settings.model_copy(
        update={
            "database_url": database_url(postgres_admin_url, f"{name}_{suffix}"),
            "topic_prefix": f"{name}{suffix}.",
            "topic_partitions": 12,
        }
    )
    await ensure_topics(run)
    await migrate_all(run)
    return run


async def count(dsn: str, query: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(query))
    finally:
        await conn.close()


async def final_state(dsn: str) -> dict[str, object]:
    conn = await asyncpg.connect(dsn)
    try:
        leads = await conn.fetch("SELECT email, score, grade, stage, events_count FROM scoring.leads")
        handoffs = await conn.fetch("SELECT lead_id, cycle FROM handoff.handoffs")
        lead_ids = await conn.fetch("SELECT lead_id, email FROM scoring.leads")
    finally:
        await conn.close()
    email_of = {r["lead_id"]: r["email"] for r in lead_ids}
    return {
        "leads": sorted(tuple(r) for r in leads),
        "handoffs": sorted((email_of[r["lead_id"]], r["cycle"]) for r in handoffs),
    }


async def run_pipeline(settings: Settings, config_dir: Path, *, instances: int, kill_halfway: bool) -> dict:
    dsn = settings.database_url.replace("postgresql+asyncpg://", "postgresql://")
    fast = {
        "LEADFLOW_SLA_TIMER_POLL_S": "0.2",
        "LEADFLOW_ALERT_EVAL_INTERVAL_S": "0.5",
        # The history is dated START, days ago: decay looks would re-score it at whatever moment
        # each run reaches them, and the runs are compared as of their events.
        "LEADFLOW_SCORING_DECAY_POLL_S": "0",
    }
    processes = {
        (service, i): start_service(service, settings, config_dir=config_dir, **fast)
        for service in ("scoring", "handoff", "feedback")
        for i in range(instances)
    }
    try:
        for _, url in processes.values():
            await eventually(lambda url=url: service_ready(url), timeout=90)
        async with tap(settings, settings.topic_prefix + "lead.lifecycle") as lifecycle:
            async with producer(settings) as p:
                sends = [
                    await p.send(settings.topic_prefix + "lead.events", e.to_bytes(), key=e.identity.encode())
                    for e in history("scale")
                ]
                await asyncio.gather(*sends)
            total = LEADS * EVENTS_PER_LEAD
            if kill_halfway:
                await eventually(
                    lambda: _at_least(dsn, "SELECT count(*) FROM scoring.lead_events", total // 2),
                    timeout=120,
                )
                for victim in (("scoring", 0), ("handoff", 0)):
                    processes[victim][0].send_signal(signal.SIGKILL)
            await eventually(
                lambda: _at_least(dsn, "SELECT count(*) FROM scoring.lead_events", total), timeout=240
            )
            buyers = LEADS // 2
            await eventually(
                lambda: _at_least(dsn, "SELECT count(*) FROM handoff.handoffs", buyers), timeout=240
            )
            await lifecycle.wait_for("handoff.sla_breached", count=buyers, timeout=240)
            await asyncio.sleep(3.0)  # anything duplicated would show up now
            state = await final_state(dsn)
            state["lifecycle"] = {
                kind: Counter(
                    Counter(e.id for e in lifecycle.envelopes(kind)).values()
                )  # unique ids per event
                for kind in (
                    "lead.mql_reached",
                    "handoff.created",
                    "handoff.sla_warning",
                    "handoff.sla_breached",
                )
            }
            # Messages per handoff, by message id: a relay killed between publishing and deleting
            # its rows publishes them again (at least once), and consumers' inboxes absorb that.
            state["per_handoff"] = {
                kind: set(
                    Counter(
                        e.data["handoff_id"] for e in {e.id: e for e in lifecycle.envelopes(kind)}.values()
                    ).values()
                )
                for kind in ("handoff.created", "handoff.sla_warning", "handoff.sla_breached")
            }
            state["mqls"] = len({e.lead_id for e in lifecycle.envelopes("lead.mql_reached")})
            state["alerts"] = await _reject_some_and_count_alerts(settings, processes, lifecycle)
            return state
    finally:
        for process, _ in processes.values():
            if process.poll() is None:
                process.terminate()
        for process, _ in processes.values():
            process.wait(timeout=30)


async def _at_least(dsn: str, query: str, n: int) -> bool | None:
    return await count(dsn, query) >= n or None


async def _reject_some_and_count_alerts(settings: Settings, processes: dict, lifecycle) -> dict:  # type: ignore[no-untyped-def]
    """Reject 30 of the handoffs: the return rate passes 10% and exactly one return-rate alert is
    raised. Every handoff breached its review SLA: one breach alert each, resolved by the rejection."""
    handoff_url = next(
        url
        for (service, _), (process, url) in processes.items()
        if service == "handoff" and process.poll() is None
    )
    async with (
        loopback_client(timeout=10) as client,
        tap(settings, settings.topic_prefix + "ops.alerts") as alerts,
    ):
        page = (await client.get(f"{handoff_url}/v1/handoffs", params={"limit": 100}, headers=ADMIN)).json()
        for handoff in page["items"][:30]:
            response = await client.post(
                f"{handoff_url}/v1/handoffs/{handoff['handoff_id']}/reject",
                json={"reason": "not_a_fit"},
                headers=ADMIN,
            )
            assert response.status_code == 200, response.text
        await alerts.wait_for("alert.raised", lambda e: e.data["metric"] == "return_rate", timeout=60)
        await alerts.wait_for("alert.resolved", count=30, timeout=60)
        await asyncio.sleep(3.0)

        def per_key(kind: str, metric: str) -> Counter[int]:
            """How many times each alert key got this event (unique message ids)."""
            unique = {e.id: e for e in alerts.envelopes(kind) if e.data["metric"] == metric}
            return Counter(Counter(e.data["alert_key"] for e in unique.values()).values())

        return {
            "return_rate raised": per_key("alert.raised", "return_rate"),
            "sla_breach raised": per_key("alert.raised", "sla_breach"),
            "sla_breach resolved": per_key("alert.resolved", "sla_breach"),
        }


async def test_two_of_each_service_end_where_one_of_each_does_even_through_a_kill(
    settings: Settings, postgres_admin_url: str, tmp_path: Path
) -> None:
    config_dir = tmp_path / "config"
    shutil.copytree(ROOT / "config", config_dir)
    sla = yaml.safe_load((config_dir / "sla.yaml").read_text())
    (config_dir / "sla.yaml").write_text(yaml.safe_dump({**sla, "policies": [FAST_POLICY]}))

    single = await run_pipeline(
        await fresh(settings, postgres_admin_url, "one"), config_dir, instances=1, kill_halfway=False
    )
    scaled = await run_pipeline(
        await fresh(settings, postgres_admin_url, "two"), config_dir, instances=2, kill_halfway=True
    )

    assert scaled["leads"] == single["leads"]  # the same scores, grades, stages; every event counted once
    assert {lead[4] for lead in scaled["leads"]} == {EVENTS_PER_LEAD}
    assert scaled["handoffs"] == single["handoffs"]
    assert scaled["mqls"] == single["mqls"] == LEADS // 2
    for kind in ("handoff.created", "handoff.sla_warning", "handoff.sla_breached"):
        assert scaled["per_handoff"][kind] == {1}, kind  # each fired once, across instances and the kill
    assert scaled["alerts"] == single["alerts"]
    assert single["alerts"] == {
        "return_rate raised": Counter({1: 1}),  # one key (overall), raised once
        "sla_breach raised": Counter({1: LEADS // 2}),  # every handoff's breach, once
        "sla_breach resolved": Counter({1: 30}),  # the rejected ones left the breached stage
    }
