"""Building the feature states of recently active leads when a predictive model becomes active,
before it is put in force, so the consumer's first batches after `leadflow model activate`
read no history (without a model, feature states are not kept: every lead scored meanwhile
has none).

The consumer keeps feature states from the moment warming starts (`LearnedScoring.
keeps_features`), so a lead it rescores meanwhile gets its state there; this builds the rest,
a chunk of leads per transaction, each chunk's score-state rows locked (SKIP LOCKED: a lead a
batch holds is that batch's to build). A lead whose state a batch still in flight from before
drops again is built on its next event, as before: warming only saves work, it changes no
answer (a state is the one `FeatureStateFolder.build` gives over the lead's stored events).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from services.scoring import score_state_store, store
from services.scoring.domain import LeadEvent
from services.scoring.features import RECENT_DAYS
from services.scoring.metrics import FEATURE_STATES_WARMED, FEATURE_WARMUP_SECONDS
from services.scoring.model import ScoringModel
from services.scoring.state_scoring import feature_folder, state_scorer

CHUNK = 200  # leads per transaction: a short lock, one history read


@dataclass(frozen=True)
class Warmed:
    leads: int
    seconds: float


async def warm_feature_states(
    engine: AsyncEngine, model: ScoringModel, *, now: datetime, chunk: int = CHUNK
) -> Warmed:
    """Build the feature state of every lead scored in the last RECENT_DAYS that has none under
    the model's rules (older leads are built on their next event, as before)."""
    started = time.perf_counter()
    scorer, folder = state_scorer(model), feature_folder(model)
    since, after, warmed = now - timedelta(days=RECENT_DAYS), "", 0
    while True:
        async with engine.begin() as conn:
            lead_ids = await score_state_store.claim_unfeatured(
                conn,
                model_key=scorer.key,
                features_key=folder.key,
                active_since=since,
                after=after,
                limit=chunk,
            )
            if not lead_ids:
                break
            rows = await store.histories(conn, lead_ids)
            built = {
                lead_id: folder.build(LeadEvent(r.type, r.occurred_at, r.properties) for r in rows[lead_id])
                for lead_id in lead_ids
            }
            await score_state_store.save_features(conn, built, features_key=folder.key)
        warmed += len(lead_ids)
        after = lead_ids[-1]
    seconds = time.perf_counter() - started
    FEATURE_STATES_WARMED.inc(warmed)
    FEATURE_WARMUP_SECONDS.inc(seconds)
    return Warmed(warmed, seconds)
