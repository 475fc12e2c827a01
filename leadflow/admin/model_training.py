"""`leadflow model train`, `activate` and `recommend`: the predictive model learned from the
outcomes scoring recorded, the choice of the one scoring applies, and the MQL setting that
keeps returns under a target.

Training and recommend stream history lead by lead: only the leads with decisions are
read, each lead's events are held while its examples are taken, then dropped. What stays
in memory is one compact feature row per labelled handoff (training.ExampleRows), or for
recommend one `Decided` (a few numbers) per labelled handoff. Both replay each lead through
the backtest engine (incremental_scorer.TimelineScorer, via training.examples_of), the
scorer `leadflow backtest` runs, so the three agree on every score.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from services.scoring import model_store
from services.scoring.incremental_scorer import TimelineScorer
from services.scoring.learning_config import LearningConfig
from services.scoring.likelihood import Predictor
from services.scoring.model import ScoringModel
from services.scoring.model_metrics import Platt
from services.scoring.recommend import Decided, Recommendation, recommend
from services.scoring.training import ExampleRows, Trained, examples_of, train
from shared.db import make_engine
from shared.envelope import utcnow
from shared.settings import Settings


@dataclass(frozen=True)
class TrainingRun:
    trained: Trained
    leads: int
    events: int


async def train_model(
    settings: Settings, *, model: ScoringModel, learning: LearningConfig, since: datetime
) -> TrainingRun:
    """Train on decisions since `since` and store the model (inactive); raises NotEnoughExamples."""
    engine = make_engine(settings, bounded=False)
    try:
        async with engine.connect() as conn:
            decided = await model_store.decisions_by_lead(conn, since=since)
            examples = ExampleRows()  # compact: no feature dict per example outlives its lead
            scorer = TimelineScorer(model)  # prepared once for every lead
            leads = events = 0
            async for lead in model_store.stream_decided_leads(conn, since=since):
                leads, events = leads + 1, events + len(lead.events)
                examples.extend(
                    examples_of(
                        model,
                        email=lead.email,
                        traits=lead.traits,
                        events=lead.events,
                        cycles=decided.pop(lead.lead_id, {}),
                        rules=learning.labels,
                        account=lead.account,
                        scorer=scorer,
                    )
                )
        trained = train(examples, learning.training)
        async with engine.begin() as conn:
            await model_store.save_model(conn, trained)
        return TrainingRun(trained, leads, events)
    finally:
        await engine.dispose()


async def activate_model(settings: Settings, version: str) -> bool:
    """Make `version` the model scoring applies; False when no such model is stored."""
    engine = make_engine(settings, bounded=False)
    try:
        async with engine.begin() as conn:
            return await model_store.activate(conn, version, at=utcnow())
    finally:
        await engine.dispose()


async def recommend_setting(
    settings: Settings, *, model: ScoringModel, learning: LearningConfig, since: datetime, target: float
) -> Recommendation:
    """Search the MQL setting on decided history since `since`, with the active model's
    likelihood (none active: the rule score and grade alone). Streams like training."""
    return recommend(
        await decided_history(settings, model=model, learning=learning, since=since), target=target
    )


async def decided_history(
    settings: Settings, *, model: ScoringModel, learning: LearningConfig, since: datetime
) -> list[Decided]:
    """Every labelled handoff decided since `since`, as recommend projects it: the rule score
    and grade the backtest engine replays at the label moment, and the active model's
    likelihood there (None when no model is active)."""
    engine = make_engine(settings, bounded=False)
    try:
        async with engine.connect() as conn:
            return [d async for d in _decided(conn, model=model, learning=learning, since=since)]
    finally:
        await engine.dispose()


async def _decided(
    conn: AsyncConnection, *, model: ScoringModel, learning: LearningConfig, since: datetime
) -> AsyncIterator[Decided]:
    row = await model_store.active_model(conn)
    predictor = None
    if row is not None:
        calibration = Platt(row.calibration["a"], row.calibration["b"])
        predictor = Predictor(row.version, row.booster, row.features, calibration)
    decided = await model_store.decisions_by_lead(conn, since=since)
    scorer = TimelineScorer(model)  # the backtest engine, prepared once for every lead
    async for lead in model_store.stream_decided_leads(conn, since=since):
        for example in examples_of(
            model,
            email=lead.email,
            traits=lead.traits,
            events=lead.events,
            cycles=decided.pop(lead.lead_id, {}),  # each lead's decisions are read once
            rules=learning.labels,
            account=lead.account,
            scorer=scorer,
        ):
            likely = predictor.likelihood(example.features, top=0).value if predictor else None
            label = example.label
            yield Decided(
                example.rule_score,
                example.grade,
                likely,
                label.positive,
                label.weight,
                lead.lead_id,
                label.as_of,
            )
