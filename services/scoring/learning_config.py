"""config/learning.yaml: how scoring learns from outcomes. Which decisions are labels, how a
model is trained and judged, how its likelihood joins the MQL rule, and how much of the
handoff volume explores beyond the rules. Pure: the schema and its error.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.scoring.labels import LabelRules
from shared.config_errors import PydanticWordedConfigError

_STRICT = ConfigDict(extra="forbid", frozen=True)


class LearningFileError(PydanticWordedConfigError, ValueError):
    """The learning config does not load; each problem names its line."""

    what = "learning config"


class TrainingSettings(BaseModel):
    model_config = _STRICT

    holdout_share: float = Field(default=0.25, gt=0, lt=1, description="newest share of examples judged on")
    calibration_share: float = Field(
        default=0.2, gt=0, lt=1, description="newest share of the rest, for calibration"
    )
    min_examples: int = Field(default=40, ge=10)
    rounds: int = Field(default=150, ge=1, le=5000, description="the most trees")
    early_stopping_rounds: int = Field(
        default=20,
        ge=0,
        description="stop once this many trees in a row have not improved the calibration fold's "
        "log loss, keeping the best (0: always `rounds` trees)",
    )
    learning_rate: float = Field(default=0.05, gt=0, le=1)
    num_leaves: int = Field(default=15, ge=2, le=1024)
    min_data_in_leaf: int = Field(default=10, ge=1)
    min_feature_support: int = Field(default=3, ge=1, description="examples a feature must appear in")
    max_features: int = Field(default=400, ge=1)
    seed: int = 7
    # The trees depend on the thread count (deterministic for a given count), so it is a
    # setting, not the machine's core count. One by default: on a busy 2-core machine two
    # threads measured 2-5x slower (OpenMP threads wait on each other), see docs/benchmarks.md.
    threads: int = Field(default=1, ge=1, le=64, description="LightGBM threads while training")


class LikelihoodSettings(BaseModel):
    model_config = _STRICT

    top_factors: int = Field(default=3, ge=0, le=10)
    # Which likelihoods carry their top factors: `every_score` every lead.scored's too (the
    # contract: a score change carries its likelihood's reasons), `mql` only lead.mql_reached's
    # (and so the handoff queue). A factor list costs TreeSHAP (`pred_contrib`), some 50 times
    # the likelihood alone (docs/benchmarks.md): most of the hook's time when many leads'
    # scores move at once.
    factors_on: Literal["mql", "every_score"] = "every_score"
    # The MQL rule with a minimum likelihood: `and` needs both the rule score and the
    # likelihood, `or` either; `only` drops the rule score. Null: the rule score alone.
    min_likelihood: int | None = Field(default=None, ge=0, le=100)
    combine: Literal["and", "or", "only"] = "and"


class ExplorationSettings(BaseModel):
    model_config = _STRICT

    share: float = Field(
        default=0.0, ge=0, le=0.2, description="chance a near-miss lead is handed off to explore"
    )
    within_points: int = Field(default=20, ge=1, description="how close to the MQL score a near miss is")
    min_likelihood: int | None = Field(
        default=None, ge=0, le=100, description="also a near miss: a likelihood at least this high"
    )
    policy: str = Field(
        default="exploration", min_length=1, description="the SLA policy exploration handoffs get"
    )


class LearningConfig(BaseModel):
    model_config = _STRICT

    labels: LabelRules = LabelRules()
    training: TrainingSettings = TrainingSettings()
    likelihood: LikelihoodSettings = LikelihoodSettings()
    exploration: ExplorationSettings = ExplorationSettings()
