"""The predictive model in the pipeline: once a model is activated, scoring carries each
lead's likelihood and top factors on lead.scored and lead.mql_reached, and the handoff
queue shows them; exploration handoffs stay out of feedback's return rate."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leadflow.admin.migrations import migrate_all
from leadflow.admin.model_training import activate_model
from services.scoring import model_store
from services.scoring.config_files import load_learning_config, load_model
from services.scoring.learning_config import ExplorationSettings
from services.scoring.training import train
from shared.db import make_engine
from shared.settings import Settings
from tests.generated_buyers import examples_from, generate, hand_off
from tests.integration.test_handoff_api import handed_off
from tests.integration.test_pipeline_services import publish
from tests.lifecycle import created, moved
from tests.support import ADMIN, eventually, running, tap

START = datetime(2026, 1, 5, 9, tzinfo=UTC)


async def activate_a_trained_model(settings: Settings) -> str:
    model = load_model(settings.config_file("scoring-model.yaml"))
    labels = load_learning_config(settings.config_file("learning.yaml")).labels
    leads = list(generate(600, start=START, days=40, seed=11))
    handed = hand_off(leads, model, exploration=ExplorationSettings(share=0.2, within_points=25))
    examples = examples_from(handed, model, labels)
    trained = train(examples, load_learning_config(settings.config_file("learning.yaml")).training)
    await migrate_all(settings)
    engine = make_engine(settings)
    try:
        async with engine.begin() as conn:
            await model_store.save_model(conn, trained)
    finally:
        await engine.dispose()
    assert await activate_model(settings, trained.version)
    return trained.version


async def test_an_active_model_puts_its_likelihood_on_scores_mqls_and_the_queue(settings: Settings) -> None:
    version = await activate_a_trained_model(settings)
    fast = settings.model_copy(update={"predictive_model_poll_s": 0.2})
    async with (
        running("scoring", fast),
        running("handoff", settings) as handoff,
        tap(settings, settings.topic_prefix + "lead.lifecycle") as lifecycle,
    ):
        await asyncio.sleep(0.5)  # the model loop's first look
        created_event = await handed_off(settings, lifecycle)
        scored = [e for e in lifecycle.envelopes("lead.scored") if e.lead_id == created_event.lead_id]
        assert scored and all(e.data["likelihood"]["model_version"] == version for e in scored)
        [mql] = [e for e in lifecycle.envelopes("lead.mql_reached") if e.lead_id == created_event.lead_id]
        likelihood = mql.data["likelihood"]
        assert 0 <= likelihood["value"] <= 100 and 1 <= len(likelihood["factors"]) <= 3
        assert {"feature", "value", "points"} <= set(likelihood["factors"][0])
        assert created_event.data["likelihood"] == likelihood and created_event.data["exploration"] is False

        queue = (await handoff.client.get("/v1/handoffs", headers=ADMIN)).json()["items"]
        [row] = [h for h in queue if h["handoff_id"] == created_event.data["handoff_id"]]
        assert row["likelihood"] == likelihood and row["exploration"] is False


async def test_exploration_handoffs_are_reported_apart_from_the_return_rate(settings: Settings) -> None:
    now = datetime.now(UTC) - timedelta(hours=6)
    explored = [created(n, at=now, policy="exploration") for n in range(4)]
    for envelope in explored:
        envelope.data["exploration"], envelope.data["propensity"] = True, 0.05
    by_rule = [created(n, at=now) for n in range(4, 10)]
    for envelope in by_rule[:4]:  # scored by a model that gave each an 80% likelihood
        envelope.data["likelihood"] = {"value": 80, "model_version": "pm-test", "factors": []}
    decisions = [moved(n, "lead.rejected", at=now + timedelta(hours=1)) for n in (0, 1, 4)] + [
        moved(n, "lead.sal_accepted", at=now + timedelta(hours=1)) for n in (2, 3, 5, 6, 7, 8, 9)
    ]
    decisions += [moved(n, "lead.sql_qualified", at=now + timedelta(hours=2)) for n in (2, 3)]
    async with running("feedback", settings) as feedback:
        await publish(settings, explored + by_rule + decisions, topic="lead.lifecycle")

        async def figures() -> tuple[dict[str, Any], dict[str, Any]] | None:
            rate = (await feedback.client.get("/v1/metrics/return-rate", headers=ADMIN)).json()
            exploring = (await feedback.client.get("/v1/metrics/exploration", headers=ADMIN)).json()
            done = rate["denominator"] == 6 and exploring["decided"] == 4 and exploring["taken_on"] == 2
            return (rate, exploring) if done else None

        rate, exploring = await eventually(figures)
        assert (rate["numerator"], rate["denominator"]) == (1, 6)  # the MQL rule's own return rate
        assert exploring["handoffs"] == 4 and exploring["sent_back"] == 2
        assert exploring["return_rate"]["rate"] == 0.5 and exploring["taken_on_rate"] == 0.5

        # The dashboard's projected vs actual: the four MQLs a model scored (one sent back).
        projection = (await feedback.client.get("/v1/metrics/model-projection", headers=ADMIN)).json()
        assert projection["decided"] == 4 and projection["projected_rate"] == pytest.approx(0.2)
        assert (projection["actual"]["numerator"], projection["actual"]["rate"]) == (1, 0.25)
