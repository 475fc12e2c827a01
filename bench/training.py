"""training: `leadflow model train` and then, with the trained model active, `leadflow model
recommend` over a seeded million-event history (peak RSS and seconds of each, beside reading
that history alone), and the likelihood's cost per score change.

`python -m bench --only training`. Needs Postgres only. The history is the generated one
of tests/generated_buyers.py (silent buyers, researchers, form buyers, browsers), with a
fifth of the near misses explored, COPYed into scoring's tables a chunk at a time.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal

import asyncpg
import orjson

from bench.backtest import peak_rss_of
from bench.seeding import EVENT_COLUMNS, LEAD_COLUMNS, copy_records
from bench.stack import libpq_dsn, prepare, start_bench_broker
from leadflow.admin.model_training import activate_model
from leadflow.devstack.broker import BrokerKind
from leadflow.devstack.postgres import start_postgres
from services.scoring import model_store
from services.scoring import store as scoring_store
from services.scoring.config_files import load_learning_config, load_model
from services.scoring.domain import score_lead
from services.scoring.features import lead_features
from services.scoring.learning_config import ExplorationSettings
from services.scoring.likelihood import Predictor
from services.scoring.model_metrics import Platt
from shared.db import make_engine
from shared.envelope import utcnow
from shared.settings import Settings
from tests.generated_buyers import generate, hand_off

TRAINING_EVENTS = 1_000_000
_decisions = scoring_store.sales_decisions.c
DECISION_COLUMNS = (
    _decisions.message_id,
    _decisions.lead_id,
    _decisions.cycle,
    _decisions.handoff_id,
    _decisions.event_type,
    _decisions.reason,
    _decisions.at,
    _decisions.exploration,
    _decisions.propensity,
)


@dataclass
class TrainingTiming:
    events: int
    leads: int
    examples: int
    read_s: float
    train_s: float
    train_peak_rss_mb: float
    recommend_s: float  # `leadflow model recommend --since 365d`, the trained model active
    recommend_peak_rss_mb: float
    features_us: float  # the learned hook per judged rescore: the lead's features …
    likelihood_us: float  # … and the likelihood with its top factors
    history_events: float  # mean events per lead those were measured on
    auc: float | None
    rule_auc: float | None


async def seed_training_history(db_dsn: str, settings: Settings, events: int) -> tuple[int, int]:
    """Generated leads (about `events` events) with their handoffs' decisions; (leads, events)."""
    model = load_model(settings.config_file("scoring-model.yaml"))
    start = utcnow() - timedelta(days=120)
    exploring = ExplorationSettings(share=0.2, within_points=25)
    leads = written = 0
    conn = await asyncpg.connect(db_dsn)
    try:
        batch_no = 0
        while written < events:
            batch = list(
                generate(5_000, start=start + timedelta(days=batch_no), days=1, seed=1000 + batch_no)
            )
            batch_no += 1
            rows = [(lead.lead_id, None, orjson.dumps(lead.traits).decode()) for lead in batch]
            event_rows = [
                (
                    f"{lead.lead_id}-{i}",
                    lead.lead_id,
                    e.event_type,
                    e.occurred_at,
                    orjson.dumps(e.properties).decode(),
                )
                for lead in batch
                for i, e in enumerate(lead.events)
            ]
            decision_rows = [
                (
                    f"{h.lead.lead_id}-d{i}",
                    h.lead.lead_id,
                    1,
                    f"h-{h.lead.lead_id}",
                    d.event_type,
                    d.reason,
                    d.at,
                    d.exploration,
                    d.propensity,
                )
                for h in hand_off(batch, model, exploration=exploring)
                for i, d in enumerate(h.decisions()[1])
            ]
            await copy_records(conn, LEAD_COLUMNS, rows)
            await copy_records(conn, EVENT_COLUMNS, event_rows)
            await copy_records(conn, DECISION_COLUMNS, decision_rows)
            leads, written = leads + len(batch), written + len(event_rows)
        await conn.execute(
            "ANALYZE scoring.lead_events; ANALYZE scoring.sales_decisions; ANALYZE scoring.leads"
        )
    finally:
        await conn.close()
    return leads, written


async def training_timing(work: Path, broker_kind: BrokerKind | Literal["auto"] = "auto") -> TrainingTiming:
    broker = start_bench_broker(work, broker_kind)  # migrations create the topics too
    postgres = start_postgres(work / "pg")
    try:
        settings, _ = await prepare(broker, postgres)
        print(f"training: seeding {TRAINING_EVENTS:,} events …", flush=True)
        leads, events = await seed_training_history(libpq_dsn(settings), settings, TRAINING_EVENTS)

        engine = make_engine(settings, bounded=False)
        try:
            started = time.perf_counter()
            async with engine.connect() as conn:
                since = utcnow() - timedelta(days=365)
                read = sum(
                    [len(lead.events) async for lead in model_store.stream_decided_leads(conn, since=since)]
                )
            read_s = time.perf_counter() - started
        finally:
            await engine.dispose()

        print("training: leadflow model train …", flush=True)
        env = {
            **os.environ,
            "LEADFLOW_DATABASE_URL": settings.database_url,
            "LEADFLOW_CONFIG_DIR": str(settings.config_dir),
            "LEADFLOW_LOG_LEVEL": "WARNING",
        }
        # Its peak from its own VmHWM (bench.backtest.peak_rss_of): rusage's children maximum
        # would be the largest child the bench ever waited for (in `make bench`, a broker).
        train = [sys.executable, "-m", "leadflow", "model", "train", "--since", "365d"]
        peak_mb, train_s, code = peak_rss_of(train, env)
        if code != 0:
            raise RuntimeError(f"leadflow model train exited with {code}")

        engine = make_engine(settings, bounded=False)
        try:
            async with engine.connect() as conn:
                [stored] = await model_store.list_models(conn)
                row = (await conn.execute(scoring_store.predictive_models.select())).one()
        finally:
            await engine.dispose()

        # recommend replays the same decided history through the backtest engine and the
        # model's likelihood; its peak from its own VmHWM (bench.backtest.peak_rss_of).
        print("training: leadflow model recommend …", flush=True)
        assert await activate_model(settings, stored.version)
        argv = [sys.executable, "-m", "leadflow", "model", "recommend", "--target-return-rate", "0.10"]
        recommend_mb, recommend_s, code = peak_rss_of([*argv, "--since", "365d"], env)
        if code not in (0, 1):  # 1: no setting meets the target, still a full run
            raise RuntimeError(f"leadflow model recommend exited with {code}")
        assert read >= events * 0.3  # the decided leads hold a good part of the history
        features_us, likelihood_us, history_events = _inference_cost(settings, row)
        return TrainingTiming(
            events=events,
            leads=leads,
            examples=stored.metrics["counts"]["examples"],
            read_s=read_s,
            train_s=train_s,
            train_peak_rss_mb=peak_mb,
            recommend_s=recommend_s,
            recommend_peak_rss_mb=recommend_mb,
            features_us=features_us,
            likelihood_us=likelihood_us,
            history_events=history_events,
            auc=stored.metrics["model"]["auc"],
            rule_auc=stored.metrics["rule"]["auc"],
        )
    finally:
        broker.stop()
        postgres.stop()


def _inference_cost(settings: Settings, row: object) -> tuple[float, float, float]:
    """What the learned hook (LearnedScoring.apply) adds per judged rescore, in µs: the lead's
    features from its history, then the likelihood with its top factors; and the mean history
    length. A judged rescore is one per touched lead per batch, so at one event per lead per
    batch (the worst case) it is the cost per event of having a model active."""
    model = load_model(settings.config_file("scoring-model.yaml"))
    learning = load_learning_config(settings.config_file("learning.yaml"))
    calibration = Platt(row.calibration["a"], row.calibration["b"])  # type: ignore[attr-defined]
    predictor = Predictor(row.version, row.booster, row.features, calibration)  # type: ignore[attr-defined]
    leads = list(generate(2_000, start=utcnow() - timedelta(days=10), days=5, seed=77))
    scored = [
        score_lead(model, email=None, traits=lead.traits, events=lead.events, at=lead.last_at)
        for lead in leads
    ]
    features_s = likelihood_s = 0.0
    for lead, score in zip(leads, scored, strict=True):
        started = time.perf_counter()
        features = lead_features(
            model, traits=lead.traits, events=lead.events, at=lead.last_at, rule_score=score
        )
        between = time.perf_counter()
        predictor.likelihood(features, top=learning.likelihood.top_factors)
        features_s += between - started
        likelihood_s += time.perf_counter() - between
    n = len(leads)
    return features_s / n * 1e6, likelihood_s / n * 1e6, sum(len(lead.events) for lead in leads) / n


def training_report(t: TrainingTiming) -> str:
    return "\n".join(
        [
            "| training (`leadflow model train --since 365d`) | figure |",
            "| --- | ---: |",
            f"| history: {t.events:,} events of {t.leads:,} leads, {t.examples:,} labelled handoffs | |",
            f"| ceiling: reading the decided leads' history alone (same stream) | {t.read_s:.1f} s |",
            f"| train: features, LightGBM, calibrate, report, store (own process) | {t.train_s:.1f} s |",
            f"| train: peak RSS (VmHWM) | {t.train_peak_rss_mb:.0f} MB |",
            f"| recommend, the model active (own process) | {t.recommend_s:.1f} s |",
            f"| recommend: peak RSS (VmHWM) | {t.recommend_peak_rss_mb:.0f} MB |",
            f"| holdout AUC: model / rule score | {t.auc:.3f} / {t.rule_auc:.3f} |",
            f"| inference per judged rescore (≤ 1 per event): features from the lead's history "
            f"({t.history_events:.1f} events) / likelihood + top factors | "
            f"{t.features_us:.0f} / {t.likelihood_us:.0f} µs |",
        ]
    )
