"""The predictive model's features from each lead's running feature state, against real Postgres:
the state stored beside the score state is the one built from the lead's whole history, however
its events came (late, out of order, redelivered), so a judged rescore's likelihood is the
model's over that history (what training sees) without reading it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select, update

from services.scoring import model_store, score_state_store, store
from services.scoring.config_files import load_model
from services.scoring.decay_loop import look_at_decayed
from services.scoring.domain import LeadEvent, score_lead
from services.scoring.feature_state import FeatureState, FeatureStateFolder, features_at
from services.scoring.feature_warmup import warm_feature_states
from services.scoring.features import lead_features
from services.scoring.handlers import record_events
from services.scoring.learned_scoring import LearnedScoring
from services.scoring.learning_config import ExplorationSettings, LearningConfig, LikelihoodSettings
from services.scoring.likelihood import Predictor
from services.scoring.metrics import FEATURE_STATES_BUILT, FEATURE_STATES_WARMED
from services.scoring.training import Trained, train
from shared.envelope import Envelope, utcnow
from shared.events import LeadEventAccepted, envelope_for
from tests.generated_buyers import examples_from, generate, hand_off
from tests.integration.test_decaying_scores import in_one_transaction, lead_of, scored_events

MODEL = load_model("config/scoring-model.yaml")
FOLDER = FeatureStateFolder(MODEL)
EXPLAINED = LearningConfig(likelihood=LikelihoodSettings(factors_on="every_score"))
BUYER = {"title": "Director of Marketing", "company_size": 800, "industry": "Software", "country": "US"}
STEPS = [  # (type, properties, days before now)
    ("page_view", {"url": "https://leadflow.example/pricing", "utm_medium": "cpc"}, 3.0),
    ("page_view", {"url": "https://leadflow.example/integrations/crm"}, 2.5),
    ("content_download", {"content_id": "whitepaper"}, 2.0),
    ("webinar_attended", {"webinar_id": "w1"}, 1.0),
    ("page_view", {"url": "https://leadflow.example/blog/a", "channel": "referral"}, 200.0),  # a backfill
]


@pytest.fixture(scope="module")
def trained() -> Trained:
    leads = list(generate(600, start=utcnow() - timedelta(days=60), days=30, seed=4))
    handed = hand_off(leads, MODEL, exploration=ExplorationSettings(share=0.2, within_points=25))
    return train(examples_from(handed, MODEL, LearningConfig().labels), LearningConfig().training)


@pytest.fixture(scope="module")
def predictor(trained: Trained) -> Predictor:
    return Predictor(trained.version, trained.booster, trained.features, trained.calibration)


def events_for(email: str, now: datetime) -> list[tuple[Envelope, LeadEventAccepted]]:
    items = []
    for kind, properties, days in STEPS:
        data = LeadEventAccepted(
            event_id=uuid.uuid4().hex,
            type=kind,
            occurred_at=now - timedelta(days=days),
            received_at=now,
            email=email,
            traits=BUYER,
            properties=properties,
        )
        items.append(
            (envelope_for(data, source="test", lead_id=None, message_id=f"evt:{data.event_id}"), data)
        )
    return items


async def stored_row(engine, lead_id: str) -> Any:  # type: ignore[no-untyped-def]
    table = score_state_store.lead_score_states
    async with engine.connect() as conn:
        return (await conn.execute(select(table).where(table.c.lead_id == lead_id))).one()


async def history_of(engine, lead_id: str) -> list[LeadEvent]:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        rows = (await store.histories(conn, [lead_id]))[lead_id]
    return [LeadEvent(r.type, r.occurred_at, r.properties) for r in rows]


async def holds_the_history(engine, lead_id: str) -> bool:  # type: ignore[no-untyped-def]
    """Whether the lead's stored feature state gives the features of its whole stored history."""
    row, history = await stored_row(engine, lead_id), await history_of(engine, lead_id)
    if row.features_key != FOLDER.key or row.features is None:
        return False
    newest = max(e.occurred_at for e in history)
    rule_score = score_lead(MODEL, email=None, traits=BUYER, events=history, at=newest)
    state = FeatureState.from_json(row.features)
    return features_at(state, traits=BUYER, at=newest, rule_score=rule_score) == lead_features(
        MODEL, traits=BUYER, events=history, at=newest, rule_score=rule_score
    )


async def test_a_judged_rescore_reads_the_models_features_of_the_whole_history_from_the_state(
    engine,  # type: ignore[no-untyped-def]
    predictor: Predictor,
) -> None:
    # Every lead.scored explained: the factors too are the model's over the whole history.
    learned = LearnedScoring(MODEL, EXPLAINED)
    learned.predictor = predictor
    email = f"{uuid.uuid4().hex[:10]}@northwind.example"
    now = utcnow()
    items = events_for(email, now)
    # Out of order, one redelivered, and one 200 days older than the rest arriving late.
    for batch in ([items[2]], [items[0], items[3]], [items[2]], [items[4]], [items[1]]):
        await in_one_transaction(engine, lambda uow, batch=batch: record_events(uow, MODEL, batch, learned))
        lead = await lead_of(engine, email)
        assert await holds_the_history(engine, lead.lead_id)
    history = await history_of(engine, lead.lead_id)
    assert len(history) == len(STEPS)

    newest = max(e.occurred_at for e in history)
    rule_score = score_lead(MODEL, email=email, traits=dict(lead.traits), events=history, at=newest)
    features = lead_features(
        MODEL, traits=dict(lead.traits), events=history, at=newest, rule_score=rule_score
    )
    [expected] = predictor.likelihoods([features], top=EXPLAINED.likelihood.top_factors)
    announced = await scored_events(engine, lead.lead_id)
    assert announced[-1]["data"]["likelihood"] == expected.model_dump(mode="json")


async def test_feature_states_are_kept_while_a_model_is_active_and_built_once_when_missing(
    engine,  # type: ignore[no-untyped-def]
    predictor: Predictor,
) -> None:
    email = f"{uuid.uuid4().hex[:10]}@northwind.example"
    now = utcnow()
    items = events_for(email, now)
    learned = LearnedScoring(MODEL, LearningConfig())
    await in_one_transaction(engine, lambda uow: record_events(uow, MODEL, items[:1], learned))
    lead = await lead_of(engine, email)
    assert (await stored_row(engine, lead.lead_id)).features is None  # no model: none kept

    learned.predictor = predictor  # activated: built from the history once, then folded
    await in_one_transaction(engine, lambda uow: record_events(uow, MODEL, items[1:2], learned))
    assert await holds_the_history(engine, lead.lead_id)
    table = score_state_store.lead_score_states
    async with engine.begin() as conn:  # as if folded under other engagement rules
        await conn.execute(update(table).where(table.c.lead_id == lead.lead_id).values(features_key="other"))
    await in_one_transaction(engine, lambda uow: record_events(uow, MODEL, items[2:4], learned))
    assert await holds_the_history(engine, lead.lead_id)

    # The decay loop folds no events: it re-saves the score state and leaves the features be.
    built = (await stored_row(engine, lead.lead_id)).features
    assert await in_one_transaction(
        engine, lambda uow: look_at_decayed(uow, MODEL, now=now + timedelta(days=400), limit=10_000)
    )
    assert (await stored_row(engine, lead.lead_id)).features == built

    learned.predictor = None  # deactivated: the next events drop the state they leave behind
    await in_one_transaction(engine, lambda uow: record_events(uow, MODEL, items[4:], learned))
    assert (await stored_row(engine, lead.lead_id)).features is None


async def test_activating_a_model_builds_the_recently_active_leads_feature_states_before_it_is_in_force(
    engine,  # type: ignore[no-untyped-def]
    trained: Trained,
) -> None:
    now = utcnow()
    learned = LearnedScoring(MODEL, LearningConfig())
    emails = [f"{uuid.uuid4().hex[:10]}@northwind.example" for _ in range(5)]
    for email in emails:  # scored without a model: no feature states kept
        items = events_for(email, now)
        await in_one_transaction(
            engine, lambda uow, items=items: record_events(uow, MODEL, items[:3], learned)
        )
    lead_ids = [(await lead_of(engine, email)).lead_id for email in emails]
    assert all([(await stored_row(engine, i)).features is None for i in lead_ids])
    async with engine.begin() as conn:  # a lead last scored before the recent window: left
        await model_store.save_model(conn, trained)
        table = score_state_store.lead_score_states
        await conn.execute(
            update(table).where(table.c.lead_id == lead_ids[-1]).values(updated_at=now - timedelta(days=45))
        )

    async with engine.begin() as conn:
        assert await model_store.activate(conn, trained.version, at=now)
    warmed = FEATURE_STATES_WARMED._value.get()
    await first_look(learned, engine)  # the model loop's first look: warms, then puts it in force
    assert learned.predictor is not None and learned.predictor.version == trained.version
    assert FEATURE_STATES_WARMED._value.get() - warmed == 4
    assert all([await holds_the_history(engine, i) for i in lead_ids[:-1]])
    assert (await stored_row(engine, lead_ids[-1])).features is None

    # The first batch after reads no history for the warmed leads: their states are folded.
    built = FEATURE_STATES_BUILT._value.get()
    batch = [events_for(email, now)[3] for email in emails[:-1]]
    await in_one_transaction(engine, lambda uow: record_events(uow, MODEL, batch, learned))
    assert FEATURE_STATES_BUILT._value.get() == built
    assert all([await holds_the_history(engine, i) for i in lead_ids[:-1]])
    announced = await scored_events(engine, lead_ids[0])
    assert announced[-1]["data"]["likelihood"]["model_version"] == trained.version


async def first_look(learned: LearnedScoring, engine) -> None:  # type: ignore[no-untyped-def]
    """Run the model loop until it has put the active model in force."""
    stop = asyncio.Event()
    loop = asyncio.create_task(learned.model_loop(poll_s=0.05)(SimpleNamespace(engine=engine), stop))  # type: ignore[arg-type]
    try:
        for _ in range(200):
            if learned.predictor is not None:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the model loop did not put the model in force")
    finally:
        stop.set()
        await loop


async def test_warming_goes_a_chunk_at_a_time_and_leaves_a_lead_a_batch_holds_to_that_batch(
    engine,  # type: ignore[no-untyped-def]
) -> None:
    now = utcnow()
    learned = LearnedScoring(MODEL, LearningConfig())
    emails = [f"{uuid.uuid4().hex[:10]}@northwind.example" for _ in range(5)]
    for email in emails:
        items = events_for(email, now)
        await in_one_transaction(
            engine, lambda uow, items=items: record_events(uow, MODEL, items[:2], learned)
        )
    lead_ids = [(await lead_of(engine, email)).lead_id for email in emails]
    table = score_state_store.lead_score_states
    async with engine.connect() as holder:  # a consumer batch in flight holds one lead's row
        held = await holder.begin()
        await holder.execute(select(table.c.lead_id).where(table.c.lead_id == lead_ids[2]).with_for_update())
        warmed = await warm_feature_states(engine, MODEL, now=utcnow(), chunk=2)
        await held.rollback()
    assert warmed.leads == 4
    assert [await holds_the_history(engine, i) for i in lead_ids] == [True, True, False, True, True]
