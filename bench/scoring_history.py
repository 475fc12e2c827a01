"""scoring with history: one process draining the same backlog for leads that already have 0,
100, 1,000 and 10,000 events each, in one run (each level ROUNDS times, alternated; the median).
Scoring folds new events into each lead's running state (`scoring.lead_score_states`), so the
rate should not fall with history length (target: at 10,000 prior events, at least 0.8 of the
rate at 0)."""

from __future__ import annotations

import asyncio
import random
import statistics
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer

from bench.backlog import Drain, scoring_drain
from bench.lead_events import event
from bench.seeding import EVENT_COLUMNS, LEAD_COLUMNS, copy_records
from leadflow.devstack.ports import free_port
from services.intake.domain import IntakeEvent
from services.intake.handlers import to_envelope
from services.scoring import score_state_store
from services.scoring import store as scoring_store
from services.scoring.config_files import load_model
from services.scoring.domain import LeadEvent
from services.scoring.score_state import LeadState, LeadStateScorer
from shared.envelope import utcnow
from shared.settings import Settings

PRIOR_EVENTS = (0, 100, 1_000, 10_000)
ROUNDS = 3  # drains of each level, alternated; the median is reported
HISTORY_LEADS = 100
# 10,000 new events a level: a drain of a second or more (2,000 took a fifth of one, which the
# progress poll's 50 ms steps measured to within a quarter)
NEW_EVENTS_PER_LEAD = 100
TRAITS = {"title": "VP of Marketing", "company_size": 500, "industry": "Software", "country": "US"}
_KINDS = ("page_view", "page_view", "page_view", "email_open", "email_click", "content_download")
_STATES = score_state_store.lead_score_states.c


async def scoring_by_history(settings: Settings, db_dsn: str, env: dict[str, str]) -> dict[int, Drain]:
    """Events/s and CPU per event of one scoring process at each number of prior events per lead:
    the median of ROUNDS drains a level, each of new leads seeded for it, the levels' order
    rotated each round (one drain moved by half from run to run on a quiet machine: how a
    lead's events fall into the consumer's batches, over which its per-lead costs spread)."""
    model = load_model(settings.config_file("scoring-model.yaml"))
    drains: dict[int, list[Drain]] = {prior: [] for prior in PRIOR_EVENTS}
    for round_ in range(ROUNDS):
        for prior in PRIOR_EVENTS[round_:] + PRIOR_EVENTS[:round_]:
            run = uuid.uuid4().hex[:8]
            emails = [f"history{prior}.{lead}.{run}@northwind.example" for lead in range(HISTORY_LEADS)]
            print(
                f"scoring history: round {round_ + 1}, {prior:,} prior events for each of "
                f"{HISTORY_LEADS} leads …",
                flush=True,
            )
            await seed_prior(db_dsn, LeadStateScorer(model), emails, prior, random.Random(prior + round_))
            event_ids, placed = await publish_new(settings, emails, run)
            # A fresh port each time: on a shared machine the last one may have been taken meanwhile.
            fresh = {**env, "LEADFLOW_SCORING_PORT": str(free_port())}
            found = await scoring_drain(fresh, db_dsn, event_ids, placed)
            print(
                f"  {found.rate:,.0f} events/s, CPU {found.cpu_us:,.0f} µs, "
                f"Postgres {found.db_cpu_us:,.0f} µs per event",
                flush=True,
            )
            drains[prior].append(found)
    return {prior: _median(found) for prior, found in drains.items()}


def _median(drains: list[Drain]) -> Drain:
    """The median rate, CPU and Postgres CPU of a level's drains (each taken on its own)."""
    return Drain(
        rate=statistics.median(d.rate for d in drains),
        cpu_us=statistics.median(d.cpu_us for d in drains),
        db_cpu_us=statistics.median(d.db_cpu_us for d in drains),
    )


async def seed_prior(
    dsn: str, scorer: LeadStateScorer, emails: list[str], prior: int, rng: random.Random
) -> None:
    """The leads with `prior` events each over the last 85 days, and the running state scoring
    keeps for them (as it has once a lead's first event after the upgrade built it)."""
    now = datetime.now(UTC)
    lead_rows: list[tuple[Any, ...]] = []
    event_rows: list[tuple[Any, ...]] = []
    state_rows: list[dict[str, Any]] = []
    for email in emails:
        lead_id = str(uuid.uuid4())
        lead_rows.append((lead_id, email, orjson.dumps(TRAITS).decode()))
        history = []
        for n in range(prior):
            kind = rng.choice(_KINDS)
            props = {"url": f"https://leadflow.example/{rng.choice(['blog', 'pricing', 'product'])}/{n}"}
            at = now - timedelta(minutes=rng.randrange(60, 85 * 24 * 60))
            history.append(LeadEvent(kind, at, props))
            event_rows.append((f"prior-{lead_id}-{n}", lead_id, kind, at, orjson.dumps(props).decode()))
        if history:
            state = scorer.fold(LeadState(), history)
            state_rows.append({"lead_id": lead_id, "model_key": scorer.key, "state": state.as_json()})
    conn = await asyncpg.connect(dsn)
    try:
        await copy_records(conn, LEAD_COLUMNS, lead_rows)
        await copy_records(conn, EVENT_COLUMNS, event_rows)
        if state_rows:
            await conn.executemany(
                f"INSERT INTO {score_state_store.lead_score_states.fullname} "
                f"({_STATES.lead_id.name}, {_STATES.model_key.name}, {_STATES.state.name})"
                " VALUES ($1, $2, $3)",
                [(r["lead_id"], r["model_key"], orjson.dumps(r["state"]).decode()) for r in state_rows],
            )
        await conn.execute(f"ANALYZE {scoring_store.lead_events.fullname}")
    finally:
        await conn.close()


async def publish_new(
    settings: Settings, emails: list[str], run: str
) -> tuple[list[str], list[tuple[int, int]]]:
    """The backlog: NEW_EVENTS_PER_LEAD page views of each lead, keyed by its email; the events'
    ids and where each was placed (partition, offset)."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures, event_ids = [], []
        for n in range(NEW_EVENTS_PER_LEAD):
            for lead, email in enumerate(emails):
                body = {**event(email, n), "event_id": f"new-{run}-{lead}-{n}"}
                event_ids.append(body["event_id"])
                envelope = to_envelope(IntakeEvent.model_validate(body), received_at=utcnow(), source="bench")
                futures.append(
                    await producer.send(
                        settings.topic_prefix + "lead.events", envelope.to_bytes(), key=email.encode()
                    )
                )
        sent = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return event_ids, [(m.partition, m.offset) for m in sent]
