"""feedback's facts rebuilt from `lead.lifecycle` equal the facts its consumer maintained
incrementally, on generated lifecycles (hypothesis, real Postgres): whatever the batching,
however often a batch is redelivered, and whether the topic holds a message twice."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import text

from services.feedback import store
from services.feedback.domain import FeedbackConfig
from services.feedback.handlers import make_handlers
from services.feedback.rebuild import apply_events, read_topic
from shared.consumer import ConsumerRunner
from shared.envelope import Envelope
from shared.settings import Settings
from shared.topics import Topics
from tests.lifecycle import account, breached, created, moved

START = datetime(2026, 11, 2, 9, tzinfo=UTC)
TOPIC = "t.lead.lifecycle"

# A handoff's path through the lifecycle: each step an event type, or a breach of a stage.
PATHS = [
    [],
    ["breach:mql"],
    ["lead.rejected"],
    ["breach:mql", "lead.rejected"],
    ["lead.sal_accepted"],
    ["breach:mql", "lead.sal_accepted", "breach:sal"],
    ["lead.sal_accepted", "lead.returned"],
    ["lead.sal_accepted", "breach:sal", "lead.sql_qualified"],
    ["lead.sal_accepted", "lead.sql_qualified", "lead.sqo_created"],
    ["lead.sal_accepted", "lead.sql_qualified", "lead.sqo_created", "lead.opportunity_won"],
    ["lead.sal_accepted", "lead.sql_qualified", "lead.sqo_created", "lead.opportunity_lost"],
    ["lead.sal_accepted", "lead.sql_qualified", "lead.returned"],
    ["lead.disqualified"],
    # Reopened: back at MQL, so the decision that counts is the one after the reopen.
    ["lead.rejected", "handoff.reopened"],
    ["lead.rejected", "handoff.reopened", "lead.sal_accepted"],
    ["lead.sal_accepted", "lead.returned", "handoff.reopened", "breach:mql", "lead.rejected"],
    ["lead.sal_accepted", "lead.sql_qualified", "lead.returned", "handoff.reopened", "lead.sal_accepted"],
    ["lead.disqualified", "handoff.reopened", "lead.sal_accepted", "lead.returned"],
]


@st.composite
def topic_contents(draw: st.DrawFn) -> list[Envelope]:
    """Several handoffs' events interleaved, each handoff's in order; some published twice."""
    queues: list[list[Envelope]] = []
    for n in range(draw(st.integers(min_value=1, max_value=6))):
        at = START + timedelta(hours=draw(st.integers(min_value=0, max_value=24 * 20)))
        owner = draw(st.sampled_from(["ana", "bo"]))
        team = draw(st.sampled_from(["emea", "amer", None]))
        events = [
            created(
                n,
                at=at,
                owner=owner,
                team=team,
                source=draw(st.sampled_from(["webinar", "referral", None])),
                score=draw(st.integers(min_value=40, max_value=120)),
                rules=draw(st.sampled_from([{"fit.title": 20.0}, {"engagement.demo": 40.0, "x.y": -5.0}])),
                account=draw(st.sampled_from([None, account("strategic"), account(None)])),
            )
        ]
        path = draw(st.sampled_from(PATHS))
        for i, step in enumerate(path):
            at += timedelta(minutes=draw(st.integers(min_value=1, max_value=600)))
            owner = draw(st.sampled_from([owner, "cy"]))  # a reassignment shows in later events
            if step.startswith("breach:"):
                events.append(breached(n, at=at, stage=step.split(":")[1], owner=owner, team=team))
            else:
                qualified = step == "lead.returned" and path[i - 1] == "lead.sql_qualified"
                from_stage = "sql" if qualified else None
                if step == "handoff.reopened" and path[i - 1] == "lead.disqualified":
                    from_stage = "disqualified"
                events.append(moved(n, step, at=at, owner=owner, team=team, from_stage=from_stage))
        queues.append(events)
    published: list[Envelope] = []
    while any(queues):
        queue = draw(st.sampled_from([q for q in queues if q]))
        envelope = queue.pop(0)
        published.append(envelope)
        if draw(st.integers(min_value=0, max_value=9)) == 0:
            published.append(envelope)  # an outbox relay that crashed after publishing publishes again
    return published


def records(envelopes: list[Envelope]) -> list[ConsumerRecord[bytes, bytes]]:
    return [
        ConsumerRecord(TOPIC, 0, offset, 0, 0, None, e.to_bytes(), None, 0, 0, ())
        for offset, e in enumerate(envelopes)
    ]


async def consume_incrementally(engine, batches: list[list[ConsumerRecord[bytes, bytes]]]) -> None:  # type: ignore[no-untyped-def]
    runner = ConsumerRunner(
        group_id="feedback",
        topics=[TOPIC],
        handlers={},
        batch_handlers=make_handlers(FeedbackConfig(min_decisions=1)),
        engine=engine,
        inbox=store.inbox,
        outbox=store.outbox,
        topic_names=Topics("t."),
        producer=None,  # type: ignore[arg-type]  # used for dead letters only; there are none
        bootstrap="unused",
        source="feedback",
    )
    for batch in batches:
        await runner.handle_batch(batch)


async def reset(engine) -> None:  # type: ignore[no-untyped-def]
    async with engine.begin() as conn:
        await store.truncate_projection(conn)
        await conn.execute(text("TRUNCATE feedback.inbox, feedback.outbox, feedback.alerts"))


@hypothesis_settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(published=topic_contents(), data=st.data())
async def test_rebuild_from_the_topic_equals_the_incremental_state(engine, published, data) -> None:  # type: ignore[no-untyped-def]
    await reset(engine)
    delivered = records(published)
    cuts = sorted(data.draw(st.sets(st.integers(min_value=1, max_value=max(1, len(delivered) - 1)))))
    batches = [delivered[a:b] for a, b in zip([0, *cuts], [*cuts, len(delivered)], strict=True)]
    # A consumer that crashed before committing offsets gets a batch again, after later ones too.
    redelivered = data.draw(st.lists(st.sampled_from(batches), max_size=2))
    await consume_incrementally(engine, batches + redelivered)
    async with engine.begin() as conn:
        incremental = await store.projection_snapshot(conn)

    async with engine.begin() as conn:
        summary = await apply_events(conn, [[e.to_bytes() for e in published]])
        rebuilt = await store.projection_snapshot(conn)

    assert rebuilt == incremental
    assert summary.applied == len({e.id for e in published})
    assert len(rebuilt["handoff_facts"]) == len({e.lead_id for e in published})


def test_the_generated_lifecycles_cover_every_kind_of_event() -> None:
    kinds: set[str] = set()
    for path in PATHS:
        kinds |= {step.split(":")[0] for step in path}
    assert kinds >= {
        "breach",
        "lead.rejected",
        "lead.sal_accepted",
        "lead.returned",
        "lead.sql_qualified",
        "lead.sqo_created",
        "lead.disqualified",
        "lead.opportunity_won",
        "lead.opportunity_lost",
        "handoff.reopened",
    }


async def test_the_rebuild_reads_every_message_even_of_batched_produce(settings: Settings) -> None:
    """Tansu lists end offsets short of records produced in batches; the rebuild must not stop there."""
    topic = settings.topic_prefix + "lead.lifecycle"
    envelopes = [e for n in range(100) for e in (created(n), moved(n, "lead.sal_accepted"))]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=20)
    await producer.start()
    try:
        sent = [await producer.send(topic, e.to_bytes(), key=(e.lead_id or "").encode()) for e in envelopes]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    read = [
        value for batch in [b async for b in read_topic(settings.kafka_bootstrap, topic)] for value in batch
    ]
    assert sorted(read) == sorted(e.to_bytes() for e in envelopes)
