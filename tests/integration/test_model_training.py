"""`leadflow model train` and `activate` against a real scoring database: training streams
the stored history of decided leads, stores a versioned model with its report, and one
model at a time is active."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console
from sqlalchemy import insert

from leadflow.admin.migrations import migrate_all
from leadflow.admin.model_training import activate_model, recommend_setting, train_model
from services.scoring import model_store
from services.scoring.accounts.tables import account_members, accounts
from services.scoring.config_files import load_learning_config, load_model
from services.scoring.learning_config import ExplorationSettings
from services.scoring.recommend_report import render_recommendation
from services.scoring.training import NotEnoughExamples
from services.scoring.training_report import render_training
from shared.db import make_engine
from shared.settings import Settings
from tests.generated_buyers import generate, hand_off, seed

START = datetime(2026, 1, 5, 9, tzinfo=UTC)


async def test_training_stores_a_versioned_model_with_its_report_and_activation_picks_one(
    settings: Settings,
) -> None:
    await migrate_all(settings)
    model = load_model(settings.config_file("scoring-model.yaml"))
    learning = load_learning_config(settings.config_file("learning.yaml"))
    engine = make_engine(settings)
    try:
        async with engine.begin() as conn:
            with pytest.raises(NotEnoughExamples):
                await train_model(settings, model=model, learning=learning, since=START)
            leads = list(generate(600, start=START, days=40, seed=5))
            await seed(
                conn,
                leads,
                hand_off(leads, model, exploration=ExplorationSettings(share=0.2, within_points=25)),
            )

        run = await train_model(settings, model=model, learning=learning, since=START - timedelta(days=1))
        trained = run.trained
        assert run.leads == trained.counts["examples"] and run.events > run.leads
        assert trained.model.auc is not None and trained.rule.auc is not None
        assert trained.model.auc > trained.rule.auc

        again = await train_model(settings, model=model, learning=learning, since=START - timedelta(days=1))
        assert again.trained.version == trained.version  # the same history trains the same model

        async with engine.connect() as conn:
            [stored] = await model_store.list_models(conn)
            assert stored.version == trained.version and not stored.active
            assert stored.metrics["model"]["auc"] == trained.model.auc
            assert stored.metrics["rule"]["auc"] == trained.rule.auc
            assert stored.window_from == trained.window[0]

        assert not await activate_model(settings, "pm-no-such-model")
        assert await activate_model(settings, trained.version)
        async with engine.connect() as conn:
            active = await model_store.active_model(conn)
            assert active is not None and active.version == trained.version and active.features
    finally:
        await engine.dispose()

    console = Console(record=True, width=120)
    console.print(render_training(trained))
    report = console.export_text()
    for figure in (
        "AUC",
        "log loss",
        "Brier score",
        "top-decile lift",
        "calibration by decile",
        trained.version,
    ):
        assert figure in report

    # With the model active, recommend projects each setting over the same decided history.
    recommendation = await recommend_setting(
        settings, model=model, learning=learning, since=START - timedelta(days=1), target=0.10
    )
    assert recommendation.best is not None and recommendation.best.meets(0.10)
    assert recommendation.best.setting.min_likelihood is not None
    console = Console(record=True, width=160)
    console.print(render_recommendation(recommendation))
    answer = console.export_text()
    assert "recommended" in answer and "config/learning.yaml: likelihood.min_likelihood" in answer


async def test_training_and_scoring_read_the_leads_accounts_as_scoring_stores_them(
    settings: Settings,
) -> None:
    await migrate_all(settings)
    model = load_model(settings.config_file("scoring-model.yaml"))
    learning = load_learning_config(settings.config_file("learning.yaml"))
    leads = list(generate(400, start=START, days=30, seed=9))
    in_accounts = {lead.lead_id: lead for lead in leads[::2]}
    engine = make_engine(settings)
    try:
        async with engine.begin() as conn:
            await seed(conn, leads, hand_off(leads, model))
            await conn.execute(
                insert(accounts),
                [
                    {
                        "account_id": "acct-big",
                        "name": "Big Co",
                        "source": "import",
                        "tier": "Enterprise",
                        "score": 80,
                        "grade": "A",
                        "engaged_people": 5,
                    },
                    {
                        "account_id": "acct-small",
                        "name": "Small Co",
                        "tier": None,
                        "source": "auto",
                        "score": 20,
                        "grade": "C",
                        "engaged_people": 1,
                    },
                ],
            )
            await conn.execute(
                insert(account_members),
                [
                    {
                        "lead_id": lead_id,
                        "account_id": "acct-big" if lead.good else "acct-small",
                        "matched_by": "domain",
                        "facts_digest": "d",
                    }
                    for lead_id, lead in in_accounts.items()
                ],
            )
        async with engine.connect() as conn:
            streamed = {
                lead.lead_id: lead.account
                async for lead in model_store.stream_decided_leads(conn, since=START - timedelta(days=1))
            }
            looked_up = await model_store.account_facts(conn, list(streamed))
        assert streamed and {k: v for k, v in streamed.items() if v is not None} == looked_up
        assert set(looked_up) == set(streamed) & set(in_accounts)  # the others have none
        big = next(a for a in looked_up.values() if a.tier == "Enterprise")
        assert (big.score, big.grade, big.engaged_people, big.matched_by) == (80, "A", 5, "domain")

        run = await train_model(settings, model=model, learning=learning, since=START - timedelta(days=1))
        assert {"account_tier=enterprise", "account_grade=C", "account_score"} <= set(run.trained.features)
    finally:
        await engine.dispose()
