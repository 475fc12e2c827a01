"""Scoring against real Postgres, checked on generated histories (hypothesis):
a lead's score does not depend on the order its events arrive in, and any event
processed twice leaves the same state as once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from services.scoring import store
from services.scoring.config_files import load_model
from services.scoring.handlers import record_events
from shared.envelope import Envelope
from shared.events import LeadEventAccepted, envelope_for
from shared.topics import Topics
from shared.unit_of_work import UnitOfWork

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
KINDS = {
    "page_view": {"url": "https://leadflow.example/pricing"},
    "content_download": {"content_id": "whitepaper"},
    "webinar_attended": {"webinar_id": "w1"},
    "demo_request": {"form_id": "demo"},
    "email_click": {"campaign": "nov", "url": "https://leadflow.example/blog"},
}
TRAITS = {"title": "Director of Marketing", "company_size": 800, "industry": "Software", "country": "US"}

event_specs = st.lists(
    st.tuples(st.sampled_from(sorted(KINDS)), st.integers(min_value=0, max_value=60 * 24 * 40)),
    min_size=1,
    max_size=8,
)


def events_for(email: str, specs: list[tuple[str, int]]) -> list[tuple[Envelope, LeadEventAccepted]]:
    items = []
    for kind, minutes_ago in specs:
        event_id = uuid.uuid4().hex
        data = LeadEventAccepted(
            event_id=event_id,
            type=kind,
            occurred_at=NOW - timedelta(minutes=minutes_ago),
            received_at=NOW,
            email=email,
            traits=TRAITS,
            properties=KINDS[kind],
        )
        items.append((envelope_for(data, source="test", lead_id=None, message_id=f"evt:{event_id}"), data))
    return items


async def process_one_at_a_time(engine, items: list[tuple[Envelope, LeadEventAccepted]]) -> None:  # type: ignore[no-untyped-def]
    model = load_model("config/scoring-model.yaml")
    for item in items:
        async with engine.begin() as conn:
            uow = UnitOfWork(conn=conn, outbox=store.outbox, topics=Topics("t."), source="scoring")
            await record_events(uow, model, [item])
            await uow.flush()


async def state_of(engine, email: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        lead = (await conn.execute(select(store.leads).where(store.leads.c.email == email))).one()
        outbox = (await conn.execute(select(func.count()).select_from(store.outbox))).scalar_one()
    keep = ("score", "fit_points", "grade", "disqualified", "explanation", "events_count", "model_version")
    return {"lead": {k: lead._mapping[k] for k in keep}, "stage": lead.stage, "outbox": outbox}


@hypothesis_settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(specs=event_specs, data=st.data())
async def test_score_does_not_depend_on_arrival_order(engine, specs, data) -> None:  # type: ignore[no-untyped-def]
    first, second = (f"{uuid.uuid4().hex[:10]}@northwind.example" for _ in range(2))
    shuffled = data.draw(st.permutations(specs))
    await process_one_at_a_time(engine, events_for(first, specs))
    await process_one_at_a_time(engine, events_for(second, shuffled))
    assert (await state_of(engine, first))["lead"] == (await state_of(engine, second))["lead"]


@hypothesis_settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(specs=event_specs, data=st.data())
async def test_any_event_processed_twice_changes_nothing(engine, specs, data) -> None:  # type: ignore[no-untyped-def]
    email = f"{uuid.uuid4().hex[:10]}@northwind.example"
    items = events_for(email, specs)
    await process_one_at_a_time(engine, items)
    before = await state_of(engine, email)
    again = data.draw(st.lists(st.sampled_from(items), min_size=1, max_size=len(items)))
    await process_one_at_a_time(engine, again)
    assert await state_of(engine, email) == before
