"""Scores true as time passes, against real Postgres: the stored score, from the lead's running
state, equals the full recompute; a decaying score is looked at again when it matters; a lead
with sales stays with sales; one lead's answer is its score as of now."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from services.scoring import lifecycle, score_state_store, store
from services.scoring.config_files import load_model
from services.scoring.decay_loop import look_at_decayed
from services.scoring.decay_moments import meaningful, next_look
from services.scoring.domain import LeadEvent
from services.scoring.handlers import record_events
from services.scoring.state_scoring import score_as_of, state_scorer
from shared.envelope import Envelope, utcnow
from shared.event_types import EventType
from shared.events import LeadEventAccepted, envelope_for
from shared.topics import Topics
from shared.unit_of_work import UnitOfWork

MODEL = load_model("config/scoring-model.yaml")  # MQL: score 50, grade B; half-life 60 days
BUYER = {"title": "Director of Marketing", "company_size": 800, "industry": "Software", "country": "US"}
ANALYST = {"title": "Analyst", "company_size": 800, "industry": "Software"}  # grade C: never an MQL
STEPS = [
    ("page_view", {"url": "https://leadflow.example/pricing"}),
    ("content_download", {"content_id": "whitepaper"}),
    ("demo_request", {"form_id": "demo"}),
    ("contact_sales", {"form_id": "contact"}),
]


def events_for(email: str, traits: dict[str, Any], at: datetime) -> list[tuple[Envelope, LeadEventAccepted]]:
    items = []
    for n, (kind, properties) in enumerate(STEPS):
        data = LeadEventAccepted(
            event_id=uuid.uuid4().hex,
            type=kind,
            occurred_at=at - timedelta(hours=len(STEPS) - n),
            received_at=at,
            email=email,
            traits=traits,
            properties=properties,
        )
        items.append(
            (envelope_for(data, source="test", lead_id=None, message_id=f"evt:{data.event_id}"), data)
        )
    return items


async def in_one_transaction(engine, work) -> Any:  # type: ignore[no-untyped-def]
    async with engine.begin() as conn:
        uow = UnitOfWork(conn=conn, outbox=store.outbox, topics=Topics("t."), source="scoring")
        result = await work(uow)
        await uow.flush()
        return result


async def lead_of(engine, email: str) -> Any:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        return (await conn.execute(select(store.leads).where(store.leads.c.email == email))).one()


async def due_of(engine, lead_id: str) -> datetime | None:  # type: ignore[no-untyped-def]
    table = score_state_store.lead_score_states
    async with engine.connect() as conn:
        query = select(table.c.decay_due_at).where(table.c.lead_id == lead_id)
        return (await conn.execute(query)).scalar_one()


async def scored_events(engine, lead_id: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        rows = await conn.execute(select(store.outbox.c.payload).order_by(store.outbox.c.seq))
        envelopes = [json.loads(r.payload) for r in rows]
    return [e for e in envelopes if e["lead_id"] == lead_id and e["type"] == EventType.LEAD_SCORED]


async def test_events_one_batch_at_a_time_out_of_order_score_like_the_full_recompute(engine) -> None:  # type: ignore[no-untyped-def]
    email = f"{uuid.uuid4().hex[:10]}@northwind.example"
    items = events_for(email, BUYER, utcnow())
    for item in [items[2], items[0], items[3], items[1]]:  # late and out of order, one batch each
        await in_one_transaction(engine, lambda uow, item=item: record_events(uow, MODEL, [item]))
    lead = await lead_of(engine, email)
    history = [LeadEvent(e.type, e.occurred_at, e.properties) for _, e in items]
    oracle = lifecycle.rescore(MODEL, lead, dict(lead.traits), history)
    assert (lead.score, lead.grade, lead.events_count) == (oracle.result.score, oracle.result.grade, 4)
    assert lead.explanation == [c.model_dump() for c in oracle.explanation]


async def test_decaying_scores_are_looked_at_when_they_matter(engine) -> None:  # type: ignore[no-untyped-def]
    buyer, close = (f"{uuid.uuid4().hex[:10]}@northwind.example" for _ in range(2))
    now = utcnow()
    await in_one_transaction(
        engine,
        lambda uow: record_events(
            uow, MODEL, events_for(buyer, BUYER, now) + events_for(close, ANALYST, now)
        ),
    )
    mql, nurture = await lead_of(engine, buyer), await lead_of(engine, close)
    assert (mql.stage, nurture.stage) == ("mql", "nurture")
    assert nurture.score >= MODEL.mql.min_score  # close: score enough, grade C
    due = await due_of(engine, nurture.lead_id)
    assert due is not None and now < due < now + timedelta(days=60)

    later = now + timedelta(days=90)
    looked = await in_one_transaction(
        engine, lambda uow: look_at_decayed(uow, MODEL, now=later, limit=10_000)
    )
    assert looked >= 2
    decayed_mql, decayed = await lead_of(engine, buyer), await lead_of(engine, close)
    assert decayed.stage == "nurture" and decayed.score < MODEL.mql.min_score  # no longer close
    assert decayed_mql.stage == "mql" and decayed_mql.mql_at == mql.mql_at  # stays with sales
    assert decayed_mql.score < mql.score
    announced = await scored_events(engine, decayed.lead_id)
    assert announced[-1]["data"]["score"] == decayed.score
    assert all("decayed" in c["detail"] for c in decayed.explanation if c["kind"] == "engagement")
    next_due = await due_of(engine, decayed.lead_id)
    assert next_due is None or next_due > later
    # Nothing else is due at that moment: looked at once, not in a loop.
    again = await in_one_transaction(engine, lambda uow: look_at_decayed(uow, MODEL, now=later, limit=10_000))
    assert again == 0


async def test_the_early_look_planned_after_events_is_followed_by_the_exact_one(engine) -> None:  # type: ignore[no-untyped-def]
    email = f"{uuid.uuid4().hex[:10]}@northwind.example"
    now = utcnow()
    await in_one_transaction(engine, lambda uow: record_events(uow, MODEL, events_for(email, BUYER, now)))
    lead = await lead_of(engine, email)
    early = await due_of(engine, lead.lead_id)  # decay_moments.early_look: cheap, never late
    assert early is not None and early > now
    await in_one_transaction(engine, lambda uow: look_at_decayed(uow, MODEL, now=early, limit=10_000))
    looked = await lead_of(engine, email)
    assert not meaningful(MODEL.mql.min_score, lead.score, looked.score)  # nothing missed
    scorer = state_scorer(MODEL)
    async with engine.connect() as conn:
        state = (await score_state_store.states(conn, [lead.lead_id], model_key=scorer.key))[lead.lead_id]
        as_of_early = await score_as_of(conn, MODEL, looked, at=early)
    assert as_of_early is not None
    exact = next_look(scorer, state, as_of_early, at=early)
    assert exact is not None and await due_of(engine, lead.lead_id) == exact


async def test_one_lead_is_answered_with_its_score_as_of_now(engine) -> None:  # type: ignore[no-untyped-def]
    email = f"{uuid.uuid4().hex[:10]}@northwind.example"
    now = utcnow()
    await in_one_transaction(engine, lambda uow: record_events(uow, MODEL, events_for(email, BUYER, now)))
    lead = await lead_of(engine, email)
    async with engine.connect() as conn:
        today = await score_as_of(conn, MODEL, lead, at=now)
        months_later = await score_as_of(conn, MODEL, lead, at=now + timedelta(days=120))
    assert today is not None and months_later is not None
    assert today.score == lead.score
    assert months_later.score < today.score and months_later.grade == today.grade
