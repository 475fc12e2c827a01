"""privacy: how long an erasure takes to complete with 100,000 other leads present (issue 13: < 60 s).

The other leads are written straight into the tables with COPY (scoring's leads, events and
anonymous ids; handoff's handoffs, history and webhook deliveries; feedback's facts), then
scoring, handoff and feedback run as processes and `POST /v1/erasures` is timed until
`GET /v1/erasures/{id}` says `completed`, for a few people who each have a lead, events, an
anonymous id, a handoff with a note, a webhook delivery and a fact. Beside it, in the same
run, an erasure of an email no service knows: the fixed cost of the round over the bus.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal

import asyncpg
import httpx
import orjson

from bench.seeding import copy_records
from bench.stack import libpq_dsn, prepare, serve, start_bench_broker, wait_ready
from leadflow.devstack.broker import BrokerKind
from leadflow.devstack.ports import free_port
from leadflow.devstack.postgres import start_postgres
from leadflow.devstack.processes import stop_process
from services.feedback import store as feedback_store
from services.handoff import store as handoff_store
from services.scoring import store as scoring_store
from shared.envelope import utcnow
from shared.event_types import EventType

OTHER_LEADS = 100_000
HANDED_OFF_SHARE = 5  # one lead in five has a handoff, a fact and a webhook delivery
PEOPLE = 3  # erased one after another
CEILING_S = 60.0


@dataclass(frozen=True)
class PrivacyTiming:
    other_leads: int
    erasures_s: list[float]
    unknown_email_s: float

    def report(self) -> str:
        worst, median = max(self.erasures_s), statistics.median(self.erasures_s)
        return (
            f"| erasure to `completed`, {self.other_leads:,} other leads present "
            f"(median of {len(self.erasures_s)}) | {median:.2f} s | worst {worst:.2f} s "
            f"| ceiling {CEILING_S:.0f} s (issue 13) |\n"
            f"| erasure of an unknown email (the bus round alone) | {self.unknown_email_s:.2f} s | | |"
        )


def _lead(i: int) -> tuple[str, str, str]:
    lead_id = str(uuid.uuid4())
    traits = {"first_name": f"First{i}", "last_name": f"Last{i}", "title": "VP of Marketing", "country": "US"}
    return lead_id, f"person{i}@bench-{i % 997}.example", orjson.dumps(traits).decode()


async def seed(dsn: str, people: int) -> list[str]:
    """OTHER_LEADS leads plus `people` to erase; returns the emails of the latter."""
    now = utcnow()
    leads = [_lead(i) for i in range(OTHER_LEADS + people)]
    events = [
        (f"e-{lead_id}-{n}", lead_id, "page_view", now - timedelta(days=n), '{"url": "/pricing"}')
        for lead_id, _, _ in leads
        for n in range(3)
    ]
    anonymous = [(f"anon-{lead_id}", lead_id) for lead_id, _, _ in leads]
    handed = leads[:OTHER_LEADS:HANDED_OFF_SHARE] + leads[OTHER_LEADS:]
    handoffs = [
        (
            str(uuid.uuid5(uuid.NAMESPACE_URL, lead_id)),
            lead_id,
            1,
            "rejected",
            "bench-rep",
            "standard",
            now,
            60,
            "A",
            "[]",
            orjson.dumps({"email": email, "traits": orjson.loads(traits)}).decode(),
        )
        for lead_id, email, traits in handed
    ]
    history = [
        (h[0], "bench-rep", "reject", "mql", "rejected", "not_a_fit", f"called {h[10][:40]}")
        for h in handoffs
    ]
    deliveries = [
        (
            "bench-subscription",
            f"m-{h[0]}",
            EventType.LEAD_REJECTED,
            orjson.dumps({"lead_id": h[1], "note": "called"}),
        )
        for h in handoffs
    ]
    facts = [(h[0], h[1], 1, "bench-rep", "A", 60, now, "rejected", now) for h in handoffs]
    h, hist, d, f = (
        handoff_store.handoffs.c,
        handoff_store.history.c,
        handoff_store.webhooks.deliveries.c,
        feedback_store.handoff_facts.c,
    )
    s = scoring_store
    conn = await asyncpg.connect(dsn)
    try:
        await copy_records(conn, (s.leads.c.lead_id, s.leads.c.email, s.leads.c.traits), leads)
        await copy_records(
            conn,
            (
                s.lead_events.c.event_id,
                s.lead_events.c.lead_id,
                s.lead_events.c.type,
                s.lead_events.c.occurred_at,
                s.lead_events.c.properties,
            ),
            events,
        )
        await copy_records(conn, (s.anonymous_ids.c.anonymous_id, s.anonymous_ids.c.lead_id), anonymous)
        await copy_records(
            conn,
            (
                h.handoff_id,
                h.lead_id,
                h.cycle,
                h.stage,
                h.owner,
                h.policy,
                h.decide_by,
                h.score,
                h.grade,
                h.explanation,
                h.lead,
            ),
            handoffs,
        )
        await copy_records(
            conn,
            (
                hist.handoff_id,
                hist.actor,
                hist.action,
                hist.from_stage,
                hist.to_stage,
                hist.reason,
                hist.note,
            ),
            history,
        )
        await copy_records(conn, (d.subscription_id, d.message_id, d.event_type, d.payload), deliveries)
        await copy_records(
            conn,
            (
                f.handoff_id,
                f.lead_id,
                f.cycle,
                f.owner,
                f.grade,
                f.score,
                f.handed_off_at,
                f.decision,
                f.decided_at,
            ),
            facts,
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return [email for _, email, _ in leads[OTHER_LEADS:]]


async def timed_erasure(client: httpx.AsyncClient, email: str, *, within_s: float = 120.0) -> float:
    started = time.perf_counter()
    answer = await client.post("/v1/erasures", json={"email": email})
    answer.raise_for_status()
    request_id = answer.json()["request_id"]
    while time.perf_counter() - started < within_s:
        state = (await client.get(f"/v1/erasures/{request_id}")).json()
        if state["state"] == "completed":
            return time.perf_counter() - started
        await _nap()
    raise RuntimeError(f"erasure {request_id} not completed within {within_s:.0f} s")


async def _nap() -> None:
    await asyncio.sleep(0.05)


async def run_privacy(work: Path, broker_kind: BrokerKind | Literal["auto"]) -> PrivacyTiming:
    """`python -m bench --only privacy`."""
    broker = start_bench_broker(work, broker_kind)
    postgres = start_postgres(work / "pg")
    processes = []
    try:
        settings, env = await prepare(broker, postgres)
        env = {**env, "LEADFLOW_FEEDBACK_PORT": str(free_port())}
        print(f"privacy: seeding {OTHER_LEADS:,} leads with COPY …", flush=True)
        emails = await seed(libpq_dsn(settings), PEOPLE)
        for service in ("scoring", "handoff", "feedback"):
            processes.append(serve(service, env))
        urls = {
            s: f"http://127.0.0.1:{env[f'LEADFLOW_{s.upper()}_PORT']}"
            for s in ("scoring", "handoff", "feedback")
        }
        for url in urls.values():
            await wait_ready(url)
        headers = {"Authorization": f"Bearer {settings.admin_key}"}
        async with httpx.AsyncClient(base_url=urls["scoring"], headers=headers, timeout=30.0) as client:
            print("privacy: erasures …", flush=True)
            unknown = await timed_erasure(client, f"nobody-{uuid.uuid4().hex}@bench.example")
            erasures = [await timed_erasure(client, email) for email in emails]
        return PrivacyTiming(OTHER_LEADS, erasures, unknown)
    finally:
        for process in processes:
            stop_process(process)
        broker.stop()
        postgres.stop()
