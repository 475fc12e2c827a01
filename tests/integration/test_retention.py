"""Retention against real Postgres (and Kafka for the topics' retention), with the clock moved
forward rather than waited for: what is past its retention goes, what is not stays, the
scores, stages and figures computed from pruned data stay as they were, and two instances
pruning at once delete each row once without deadlocking."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from leadflow.admin.retention import run_by_hand
from services.feedback import reports
from services.feedback import store as feedback_store
from services.feedback.config_files import load_feedback_config
from services.feedback.domain import Window
from services.handoff import store as handoff_store
from services.scoring import retention as scoring_retention
from services.scoring import store as scoring_store
from services.scoring.config_files import load_model
from services.scoring.handlers import record_events
from services.scoring.rescore import rescore_all
from shared.envelope import utcnow
from shared.events import LeadEventAccepted, envelope_for
from shared.kafka import redelivery_horizons
from shared.retention import Pruned, inbox_target, prune_service
from shared.retention_policy import DataKind
from shared.settings import Settings
from shared.topics import Topics
from shared.unit_of_work import UnitOfWork, unit_of_work
from tests.conftest import session_broker
from tests.support import eventually, running

MODEL = load_model("config/scoring-model.yaml")
START = utcnow()  # when the events happen; the clock is then moved to START + 400 days
LATER = START + timedelta(days=400)
VP = {"title": "VP Marketing", "company_size": 500, "industry": "Software", "country": "US"}


async def track(engine: AsyncEngine, settings: Settings, email: str, *events: tuple[str, int]) -> None:
    """Score `email`'s events (type, days after START) as scoring's consumer would."""
    items = []
    for kind, day in events:
        data = LeadEventAccepted(
            event_id=uuid.uuid4().hex,
            type=kind,
            occurred_at=START + timedelta(days=day),
            received_at=START,
            email=email,
            traits=VP,
            properties={"utm_medium": "referral"} if kind == "page_view" else {},
        )
        items.append((envelope_for(data, source="test", lead_id=None, message_id=data.message_id), data))
    async with engine.begin() as conn:
        uow = UnitOfWork(
            conn=conn, outbox=scoring_store.outbox, topics=Topics(settings.topic_prefix), source="x"
        )
        await record_events(uow, MODEL, items)
        await uow.flush()


async def rows(engine: AsyncEngine, query: Any) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return [dict(row._mapping) for row in await conn.execute(query)]


async def lead_state(engine: AsyncEngine) -> dict[str, Any]:
    """Every lead as stored, its score history and its events' types by email."""
    leads, events = scoring_store.leads, scoring_store.lead_events
    types = await rows(
        engine,
        select(leads.c.email, events.c.type)
        .join(events, events.c.lead_id == leads.c.lead_id)
        .order_by(leads.c.email, events.c.type),
    )
    by_email: dict[str, list[str]] = {}
    for row in types:
        by_email.setdefault(row["email"], []).append(row["type"])
    return {
        "leads": await rows(engine, select(leads).order_by(leads.c.email)),
        "score_changes": await rows(engine, select(scoring_store.score_changes).order_by("seq")),
        "events": by_email,
    }


def went(done: dict[str, list[Pruned]], kind: DataKind) -> int:
    return sum(p.rows for pruned in done.values() for p in pruned if p.target.kind is kind)


async def test_a_dormant_leads_events_go_and_its_score_stage_and_history_stay(
    engine: AsyncEngine, settings: Settings
) -> None:
    await track(engine, settings, "dormant@northwind.example", ("page_view", 0), ("demo_request", 1))
    await track(engine, settings, "dormant@northwind.example", ("contact_sales", 2))
    await track(engine, settings, "active@northwind.example", ("page_view", 0), ("demo_request", 380))
    await track(engine, settings, "unsubscribed@northwind.example", ("page_view", 0), ("unsubscribe", 1))
    before = await lead_state(engine)
    dormant = next(lead for lead in before["leads"] if lead["email"].startswith("dormant"))
    assert (dormant["stage"], dormant["events_count"]) == ("mql", 3)  # scored from all three

    dry = await run_by_hand(settings, ["scoring"], dry_run=True, now=LATER)
    assert went(dry, DataKind.RAW_EVENTS) == 4
    assert await lead_state(engine) == before  # a dry run deletes nothing
    done = await run_by_hand(settings, ["scoring"], dry_run=False, now=LATER)

    assert went(done, DataKind.RAW_EVENTS) == 4
    after = await lead_state(engine)
    assert after["events"] == {
        "active@northwind.example": ["demo_request", "page_view"],  # its latest is recent: all kept
        "unsubscribed@northwind.example": ["unsubscribe"],  # what disqualifies is kept
    }
    assert after["leads"] == before["leads"]  # scores, stages, counts, explanations, as they were
    assert after["score_changes"] == before["score_changes"]

    # A rescore after a model change skips leads without stored events: their score stays.
    topics = Topics(settings.topic_prefix)
    await rescore_all(
        lambda: unit_of_work(engine, outbox=scoring_store.outbox, topics=topics, source="x"), MODEL
    )
    rescored = next(
        lead for lead in (await lead_state(engine))["leads"] if lead["email"].startswith("dormant")
    )
    assert {k: rescored[k] for k in ("score", "stage", "grade", "events_count", "explanation")} == {
        k: dormant[k] for k in ("score", "stage", "grade", "events_count", "explanation")
    }


async def add(engine: AsyncEngine, table: Any, values: list[dict[str, Any]]) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(table), values)


async def count(engine: AsyncEngine, table: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


def delivery(n: int, status: str, days: int) -> dict[str, Any]:
    return {
        "subscription_id": "sub",
        "message_id": f"m{n}",
        "event_type": "handoff.created",
        "payload": b"{}",
        "status": status,
        "created_at": LATER - timedelta(days=days),
    }


async def test_history_deliveries_conflicts_keys_and_inbox_past_their_retention_go_and_the_rest_stays(
    engine: AsyncEngine, settings: Settings
) -> None:
    history = handoff_store.history
    await add(
        engine,
        history,
        [
            {
                "handoff_id": "h1",
                "actor": "rep",
                "action": "accept",
                "to_stage": "sal",
                "note": "old",
                "at": LATER - timedelta(days=800),
            },
            {
                "handoff_id": "h1",
                "actor": "rep",
                "action": "qualify",
                "to_stage": "sql",
                "note": None,
                "at": LATER - timedelta(days=10),
            },
        ],
    )
    await add(
        engine,
        handoff_store.webhooks.deliveries,
        [
            delivery(1, "delivered", 40),
            delivery(2, "failed", 31),
            delivery(3, "pending", 40),
            delivery(4, "delivered", 5),
        ],
    )
    conflict = {"event_id": "e", "lead_id": "l", "type": "page_view", "occurred_at": START}
    await add(
        engine,
        scoring_store.event_conflicts,
        [
            {**conflict, "stored_digest": "a", "received_digest": "b", "seen_at": LATER - timedelta(days=91)},
            {**conflict, "stored_digest": "a", "received_digest": "c", "seen_at": LATER - timedelta(days=89)},
        ],
    )
    inbox = handoff_store.inbox
    await add(
        engine,
        inbox,
        [
            {"message_id": "ancient", "topic": "t", "processed_at": LATER - timedelta(days=60)},
            {"message_id": "recent", "topic": "t", "processed_at": LATER - timedelta(days=10)},
        ],
    )

    key = {"principal": "rep", "fingerprint": "f", "status": 200, "body": {}}
    await add(
        engine,
        handoff_store.idempotency_keys,
        [
            {**key, "key": "old", "created_at": LATER - timedelta(days=8)},
            {**key, "key": "new", "created_at": LATER},
        ],
    )

    done = await run_by_hand(settings, ["scoring", "handoff", "feedback"], dry_run=False, now=LATER)

    assert await rows(engine, select(history.c.to_stage)) == [{"to_stage": "sql"}]
    left = await rows(engine, select(handoff_store.webhooks.deliveries.c.message_id).order_by("message_id"))
    assert left == [{"message_id": "m3"}, {"message_id": "m4"}]  # pending is never pruned
    assert await count(engine, scoring_store.event_conflicts) == 1
    assert await rows(engine, select(inbox.c.message_id)) == [{"message_id": "recent"}]
    assert (went(done, DataKind.HANDOFF_HISTORY), went(done, DataKind.WEBHOOK_DELIVERIES)) == (1, 2)
    assert (went(done, DataKind.EVENT_CONFLICTS), went(done, DataKind.INBOX)) == (1, 1)
    assert await rows(engine, select(handoff_store.idempotency_keys.c.key)) == [{"key": "new"}]


async def test_the_inbox_keeps_ids_a_topic_could_still_redeliver_whatever_its_own_retention(
    engine: AsyncEngine, settings: Settings
) -> None:
    # The test broker keeps records 7 days (Apache Kafka's default, plus a 7-day segment:
    # 15 days with the margin); the embedded one cannot say, so 38 days are assumed.
    inbox = scoring_store.inbox
    await add(engine, inbox, [{"message_id": "m", "topic": "t", "processed_at": LATER - timedelta(days=10)}])
    one_day = settings.model_copy(update={"inbox_retention_days": 1.0})

    await run_by_hand(one_day, ["scoring"], dry_run=False, now=LATER)

    assert await count(engine, inbox) == 1


async def test_two_instances_pruning_at_once_delete_each_row_once_and_do_not_deadlock(
    engine: AsyncEngine, settings: Settings
) -> None:
    old = LATER - timedelta(days=500)
    leads = [{"lead_id": f"l{n}"} for n in range(2_000)]
    await add(engine, scoring_store.leads, leads)
    events = [
        {"event_id": f"e{n}", "lead_id": f"l{n % 2_000}", "type": "page_view", "occurred_at": old}
        for n in range(8_000)
    ]
    await add(engine, scoring_store.lead_events, events)
    inbox = scoring_store.inbox
    await add(
        engine, inbox, [{"message_id": f"m{n}", "topic": "t", "processed_at": old} for n in range(8_000)]
    )
    await add(engine, inbox, [{"message_id": "young", "topic": "t", "processed_at": LATER}])
    small_batches = settings.model_copy(update={"retention_batch_rows": 500})
    targets = [*scoring_retention.targets(MODEL), inbox_target(inbox)]

    async def instance() -> list[Pruned]:
        return await prune_service(small_batches, service="scoring", targets=targets, topics=[], now=LATER)

    first, second = await asyncio.wait_for(asyncio.gather(instance(), instance()), timeout=60)

    by_kind = {kind: 0 for kind in DataKind}
    for pruned in (*first, *second):
        by_kind[pruned.target.kind] += pruned.rows
    assert (by_kind[DataKind.RAW_EVENTS], by_kind[DataKind.INBOX]) == (8_000, 8_000)
    assert await count(engine, scoring_store.lead_events) == 0
    assert await rows(engine, select(inbox.c.message_id)) == [{"message_id": "young"}]
    assert await count(engine, scoring_store.leads) == 2_000  # the leads themselves stay


async def test_pruning_feedback_moves_none_of_its_figures(engine: AsyncEngine, settings: Settings) -> None:
    facts = feedback_store.handoff_facts
    handed = START - timedelta(days=20)
    await add(
        engine,
        facts,
        [
            {
                "handoff_id": f"h{n}",
                "lead_id": f"l{n}",
                "cycle": 1,
                "handed_off_at": handed,
                "mql_at": handed,
                "decision": "accepted" if n % 3 else "rejected",
                "decided_at": handed + timedelta(hours=n),
                "sent_back": None if n % 3 else "rejected",
                "reason": None if n % 3 else "bad_fit",
            }
            for n in range(9)
        ],
    )
    await add(engine, feedback_store.inbox, [{"message_id": "m", "topic": "t", "processed_at": handed}])
    config = load_feedback_config("config/feedback.yaml")
    window = Window.ending(START, timedelta(days=90))

    async def figures() -> dict[str, Any]:
        async with engine.connect() as conn:
            return {
                "overall": await reports.overall(conn, config, window),
                "funnel": await reports.funnel(conn, end=START, kind="month", count=3),
            }

    before = await figures()
    assert before["overall"]["denominator"] == 9
    await run_by_hand(settings, ["feedback"], dry_run=False, now=LATER)

    assert await count(engine, feedback_store.inbox) == 0
    assert await figures() == before


async def test_dead_letter_topics_are_created_with_the_dead_letter_retention(settings: Settings) -> None:
    dlq = Topics(settings.topic_prefix).dlq(Topics(settings.topic_prefix).events)
    kind, _ = session_broker()
    if kind == "embedded":
        # The embedded broker takes topic configs at creation but cannot describe them: the
        # services then assume LEADFLOW_RETENTION_REDELIVERY_HORIZON_DAYS for the inbox.
        with pytest.raises(Exception):  # noqa: B017
            await redelivery_horizons(settings.kafka_bootstrap, [dlq])
        return
    horizons = await redelivery_horizons(settings.kafka_bootstrap, [dlq])
    segment = horizons[dlq] - timedelta(days=30) - timedelta(days=1)  # retention + segment + margin
    assert timedelta(0) <= segment <= timedelta(days=7)


async def test_a_running_service_prunes_by_itself_every_interval_and_counts_what_went(
    engine: AsyncEngine, settings: Settings
) -> None:
    history = handoff_store.history
    entry = {"handoff_id": "h1", "actor": "rep", "action": "accept", "to_stage": "sal", "note": None}
    await add(engine, history, [{**entry, "at": utcnow() - timedelta(days=1000)}, {**entry, "at": utcnow()}])
    counted = {"kind": DataKind.HANDOFF_HISTORY.value}
    before = REGISTRY.get_sample_value("leadflow_retention_pruned_total", counted) or 0.0

    async with running("handoff", settings.model_copy(update={"retention_interval_s": 0.2})):
        await eventually(lambda: _one_left(engine))

    assert REGISTRY.get_sample_value("leadflow_retention_pruned_total", counted) == before + 1


async def _one_left(engine: AsyncEngine) -> bool:
    return await count(engine, handoff_store.history) == 1
