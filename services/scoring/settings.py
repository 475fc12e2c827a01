"""scoring's own settings, beside the platform's (shared/settings.py); also `LEADFLOW_*`."""

from __future__ import annotations

from pydantic import Field

from shared.settings import Settings


class ScoringSettings(Settings):
    predictive_model_poll_s: float = Field(
        default=30.0, gt=0, description="how often scoring looks for a newly activated predictive model"
    )
    scoring_decay_poll_s: float = Field(
        default=5.0,
        ge=0,
        description="how often scoring looks for leads whose decaying score is due a re-score (0: never)",
    )
