"""`leadflow model train` and `leadflow model activate`: the predictive model learned from
the outcomes scoring recorded, and the choice of the one scoring applies.

Training streams history lead by lead: only the leads with decisions are read, each
lead's events are held while its examples are taken, then dropped. What stays in memory
is one feature row per labelled handoff.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.scoring import model_store
from services.scoring.learning_config import LearningConfig
from services.scoring.model import ScoringModel
from services.scoring.training import Example, Trained, examples_of, train
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
            examples: list[Example] = []
            leads = events = 0
            async for lead in model_store.stream_decided_leads(conn, since=since):
                leads, events = leads + 1, events + len(lead.events)
                examples += examples_of(
                    model,
                    email=lead.email,
                    traits=lead.traits,
                    events=lead.events,
                    cycles=decided.get(lead.lead_id, {}),
                    rules=learning.labels,
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
