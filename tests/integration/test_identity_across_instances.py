"""Identity across keys with two scoring instances: anonymous page views (keyed by the visitor's
anonymous id) and the `identify` that names the visitor (keyed by the email) are consumed by
different instances at the same time; each person still ends up one lead, holding the whole
timeline, with the score the full recompute gives it."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import asyncpg

from services.intake.domain import IntakeEvent
from services.intake.handlers import to_envelope
from services.scoring.config_files import load_model
from services.scoring.domain import LeadEvent, score_lead
from shared.envelope import utcnow
from shared.settings import Settings
from shared.topics import Topics
from tests.integration.test_consumer_failover import group_settled, owned_partitions, scoring_instances
from tests.support import eventually, producer

VISITORS = 12
VIEWS_BEFORE, VIEWS_AFTER = 4, 3
TRAITS = {"title": "VP of Marketing", "company_size": 500, "industry": "Software", "country": "US"}
MODEL = load_model("config/scoring-model.yaml")


def visit(n: int, run: str) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """Visitor n's email, anonymous events (page views) and identified events (identify, demo)."""
    email, anonymous_id, start = f"visitor{n}.{run}@northwind.example", f"anon-{run}-{n}", utcnow()
    at = lambda minutes: (start - timedelta(minutes=60 - minutes)).isoformat()  # noqa: E731
    views = [
        {
            "event_id": f"{run}-{n}-view-{i}",
            "type": "page_view",
            "anonymous_id": anonymous_id,
            "occurred_at": at(i if i < VIEWS_BEFORE else i + 10),
            "properties": {
                "url": "https://leadflow.example/pricing" if i % 2 else f"https://leadflow.example/p{i}"
            },
        }
        for i in range(VIEWS_BEFORE + VIEWS_AFTER)
    ]
    identified = [
        {
            "event_id": f"{run}-{n}-identify",
            "type": "identify",
            "email": email,
            "anonymous_id": anonymous_id,
            "traits": TRAITS,
            "occurred_at": at(VIEWS_BEFORE + 1),
        },
        {
            "event_id": f"{run}-{n}-demo",
            "type": "demo_request",
            "email": email,
            "occurred_at": at(VIEWS_BEFORE + 2),
            "properties": {"form_id": "demo"},
        },
    ]
    return email, views, identified


async def person_leads(dsn: str, email: str, anonymous_id: str, event_ids: str) -> dict[str, Any]:
    """The leads holding the person's email or anonymous id, and their events (ids LIKE `event_ids`)."""
    conn = await asyncpg.connect(dsn)
    try:
        leads = await conn.fetch(
            """SELECT DISTINCT l.lead_id, l.email, l.score, l.events_count, l.traits::text AS traits
               FROM scoring.leads l LEFT JOIN scoring.anonymous_ids a ON a.lead_id = l.lead_id
               WHERE l.email = $1 OR a.anonymous_id = $2""",
            email,
            anonymous_id,
        )
        events = await conn.fetch(
            "SELECT lead_id, type, occurred_at, properties::text AS properties FROM scoring.lead_events"
            " WHERE event_id LIKE $1",
            event_ids,
        )
    finally:
        await conn.close()
    return {"leads": leads, "events": events}


async def test_an_identify_merges_anonymous_history_consumed_by_another_instance(settings: Settings) -> None:
    run = uuid.uuid4().hex[:8]
    dsn = settings.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    topic = Topics(settings.topic_prefix).events
    async with scoring_instances(settings, 2) as instances:
        urls = [url for _, url in instances]
        await eventually(lambda: group_settled(settings, urls), timeout=60)
        first, second = [sorted(await owned_partitions(url, topic)) for url in urls]
        anonymous_partition, identified_partition = first[0], second[0]  # owned by different instances
        visits = [visit(n, run) for n in range(VISITORS)]
        async with producer(settings) as p:
            sends = []
            # Interleaved: views before the identify, the identify, and views after it, all at once.
            for step in range(VIEWS_BEFORE + VIEWS_AFTER + 2):
                for _, views, identified in visits:
                    kind = views if step < VIEWS_BEFORE or step >= VIEWS_BEFORE + 2 else identified
                    index = (
                        step
                        if step < VIEWS_BEFORE
                        else step - VIEWS_BEFORE
                        if kind is identified
                        else step - 2
                    )
                    body = kind[index]
                    envelope = to_envelope(
                        IntakeEvent.model_validate(body), received_at=utcnow(), source="test"
                    )
                    partition = identified_partition if kind is identified else anonymous_partition
                    key = (envelope.identity or "").encode()
                    sends.append(await p.send(topic, envelope.to_bytes(), key=key, partition=partition))
            for sent in sends:
                await sent

        async def settled(n: int, email: str) -> dict[str, Any] | None:
            found = await person_leads(dsn, email, f"anon-{run}-{n}", f"{run}-{n}-%")
            whole = VIEWS_BEFORE + VIEWS_AFTER + 2
            if len(found["events"]) == whole and any(
                lead["events_count"] == whole for lead in found["leads"]
            ):
                return found
            return None

        for n, (email, _, _) in enumerate(visits):
            found = await eventually(lambda n=n, e=email: settled(n, e), timeout=60)
            leads = found["leads"]
            assert len(leads) == 1, f"visitor {n} is {len(leads)} leads"
            lead = leads[0]
            assert lead["email"] == email
            assert {row["lead_id"] for row in found["events"]} == {lead["lead_id"]}  # the whole timeline
            history = [
                LeadEvent(r["type"], r["occurred_at"], json.loads(r["properties"])) for r in found["events"]
            ]
            oracle = score_lead(
                MODEL,
                email=email,
                traits=json.loads(lead["traits"]),
                events=history,
                at=max(e.occurred_at for e in history),
            )
            assert lead["score"] == oracle.score


async def leads_of_ids(dsn: str, anonymous: list[str], event_ids: str) -> dict[str, Any]:
    """The leads any of these anonymous ids name, and the events whose ids are LIKE `event_ids`."""
    conn = await asyncpg.connect(dsn)
    try:
        leads = await conn.fetch(
            "SELECT DISTINCT lead_id FROM scoring.anonymous_ids WHERE anonymous_id = ANY($1::text[])",
            anonymous,
        )
        events = await conn.fetch("SELECT lead_id FROM scoring.lead_events WHERE event_id LIKE $1", event_ids)
    finally:
        await conn.close()
    return {"leads": {row["lead_id"] for row in leads}, "events": [row["lead_id"] for row in events]}


async def test_an_alias_merges_history_of_the_previous_id_consumed_by_another_instance(
    settings: Settings,
) -> None:
    """userId-only history (keyed `user:<old>`) on one instance; the alias to a new userId and
    what follows under it (keyed `user:<new>`) on the other, all at once: one lead per person."""
    run = uuid.uuid4().hex[:8]
    dsn = settings.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    topic = Topics(settings.topic_prefix).events
    start = utcnow() - timedelta(minutes=30)

    def event(n: int, name: str, minute: int, anonymous_id: str, **body: Any) -> dict[str, Any]:
        at = (start + timedelta(minutes=minute)).isoformat()
        return {"event_id": f"{run}-{n}-{name}", "anonymous_id": anonymous_id, "occurred_at": at, **body}

    def person(n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        old, new = f"user:old-{run}-{n}", f"user:new-{run}-{n}"
        view = {"type": "page_view", "properties": {"url": "https://leadflow.example/pricing"}}
        before = [event(n, f"view-{i}", i, old, **view) for i in range(VIEWS_BEFORE + VIEWS_AFTER)]
        after = [
            event(n, "alias", VIEWS_BEFORE, new, type="identify", previous_id=old),
            event(n, "demo", VIEWS_BEFORE + 1, new, type="demo_request", properties={"form_id": "demo"}),
        ]
        return before, after

    async with scoring_instances(settings, 2) as instances:
        urls = [url for _, url in instances]
        await eventually(lambda: group_settled(settings, urls), timeout=60)
        first, second = [sorted(await owned_partitions(url, topic)) for url in urls]
        people = [person(n) for n in range(VISITORS)]
        async with producer(settings) as p:
            sends = []
            for step in range(VIEWS_BEFORE + VIEWS_AFTER):  # both sides interleaved, all at once
                for before, after in people:
                    for body, partition in [(before[step], first[0])] + (
                        [(after[step], second[0])] if step < len(after) else []
                    ):
                        envelope = to_envelope(
                            IntakeEvent.model_validate(body), received_at=utcnow(), source="test"
                        )
                        key = (envelope.identity or "").encode()
                        sends.append(await p.send(topic, envelope.to_bytes(), key=key, partition=partition))
            for sent in sends:
                await sent

        whole = VIEWS_BEFORE + VIEWS_AFTER + 2

        async def settled(n: int) -> dict[str, Any] | None:
            found = await leads_of_ids(dsn, [f"user:old-{run}-{n}", f"user:new-{run}-{n}"], f"{run}-{n}-%")
            return found if len(found["events"]) == whole and len(set(found["events"])) == 1 else None

        for n in range(VISITORS):
            found = await eventually(lambda n=n: settled(n), timeout=60)
            assert found["leads"] == set(found["events"]), f"person {n} is {len(found['leads'])} leads"
