"""Training the predictive model: labelled examples in, a calibrated LightGBM classifier and
its report out. Pure: no I/O; the caller streams history into examples and stores the result.

The split is by time: the oldest examples train the trees, the next ones calibrate their
output (Platt scaling), the newest are the holdout the report is computed on. The rule
score is calibrated on the same slice and judged on the same holdout, so the two compare
like for like.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import lightgbm
import numpy as np

from services.scoring.domain import LeadEvent, score_lead
from services.scoring.features import default_of, lead_features
from services.scoring.labels import Label, LabelRules, SalesDecision, label_of
from services.scoring.learning_config import TrainingSettings
from services.scoring.model import ScoringModel
from services.scoring.model_metrics import Floats, Metrics, Platt, evaluate


class NotEnoughExamples(ValueError):
    """History holds too few labelled examples, or only one kind, to train on."""


@dataclass(frozen=True)
class Example:
    """One decided handoff: the lead's features at its first decision, and what sales decided."""

    features: dict[str, float]
    label: Label
    rule_score: int
    grade: str = "D"


@dataclass(frozen=True)
class Trained:
    """A trained model and what the holdout said of it and of the rule score."""

    booster: str  # LightGBM's model text
    features: tuple[str, ...]
    calibration: Platt
    window: tuple[datetime, datetime]  # the decisions it learned from, first to last
    holdout_from: datetime
    model: Metrics
    rule: Metrics
    counts: dict[str, int]

    @property
    def digest(self) -> str:
        body = "\n".join(
            [self.booster, ",".join(self.features), f"{self.calibration.a!r},{self.calibration.b!r}"]
        )
        return hashlib.sha256(body.encode()).hexdigest()

    @property
    def version(self) -> str:
        return f"pm-{self.window[1]:%Y%m%d}-{self.digest[:10]}"


def vocabulary(examples: Sequence[Example], settings: TrainingSettings) -> tuple[str, ...]:
    """The features seen in at least `min_feature_support` examples, most common first."""
    support = Counter(name for e in examples for name, value in e.features.items() if value == value)
    common = [name for name, n in support.most_common() if n >= settings.min_feature_support]
    return tuple(sorted(common[: settings.max_features]))


def matrix(rows: Sequence[Mapping[str, float]], features: Sequence[str]) -> Floats:
    defaults = [default_of(name) for name in features]
    return np.array([[row.get(name, d) for name, d in zip(features, defaults, strict=True)] for row in rows])


def train(examples: Sequence[Example], settings: TrainingSettings) -> Trained:
    """Train, calibrate and judge on a time-based split; raises NotEnoughExamples."""
    ordered = sorted(examples, key=lambda e: e.label.as_of)
    labels = Counter(e.label.positive for e in ordered)
    if len(ordered) < settings.min_examples or len(labels) < 2:
        raise NotEnoughExamples(
            f"{len(ordered)} labelled examples ({labels[True]} positive, {labels[False]} negative); "
            f"training needs at least {settings.min_examples}, of both kinds"
        )
    holdout_at = _cut(len(ordered), settings.holdout_share)
    calibrate_at = _cut(holdout_at, settings.calibration_share)
    fit, calibrate, holdout = ordered[:calibrate_at], ordered[calibrate_at:holdout_at], ordered[holdout_at:]
    features = vocabulary(fit, settings)
    booster = _fit_booster(fit, features, settings)
    calibration = Platt.fit(*_margins(booster, calibrate, features))
    rule_calibration = Platt.fit(*_rule_scores(calibrate))
    x, y, w = _margins(booster, holdout, features)
    rx, _, _ = _rule_scores(holdout)
    return Trained(
        booster=booster.model_to_string(),
        features=features,
        calibration=calibration,
        window=(ordered[0].label.as_of, ordered[-1].label.as_of),
        holdout_from=holdout[0].label.as_of,
        model=evaluate(y, calibration(x), w),
        rule=evaluate(y, rule_calibration(rx), w, ranking=rx),
        counts={
            "examples": len(ordered),
            "train": len(fit),
            "calibration": len(calibrate),
            "holdout": len(holdout),
            "positives": labels[True],
            "exploration": sum(1 for e in ordered if e.label.exploration),
        },
    )


def _cut(n: int, share: float) -> int:
    return max(1, min(n - 1, n - math.ceil(n * share)))


def _fit_booster(examples: Sequence[Example], features: Sequence[str], settings: TrainingSettings) -> Any:
    x = matrix([e.features for e in examples], features)
    y = np.array([1.0 if e.label.positive else 0.0 for e in examples])
    w = np.array([e.label.weight for e in examples])
    params = {
        "objective": "binary",
        "learning_rate": settings.learning_rate,
        "num_leaves": settings.num_leaves,
        "min_data_in_leaf": settings.min_data_in_leaf,
        "seed": settings.seed,
        "deterministic": True,
        "num_threads": 1,
        "verbosity": -1,
    }
    data = lightgbm.Dataset(x, label=y, weight=w, feature_name=_safe_names(features), free_raw_data=True)
    return lightgbm.train(params, data, num_boost_round=settings.rounds)


def _safe_names(features: Sequence[str]) -> list[str]:
    """LightGBM refuses some characters in feature names; ours are kept in the artifact instead."""
    return [f"f{i}" for i in range(len(features))]


def _margins(
    booster: Any, examples: Sequence[Example], features: Sequence[str]
) -> tuple[Floats, Floats, Floats]:
    x = matrix([e.features for e in examples], features)
    raw = np.asarray(booster.predict(x, raw_score=True, num_threads=1), dtype=np.float64)
    return raw, _labels(examples), _weights(examples)


def _rule_scores(examples: Sequence[Example]) -> tuple[Floats, Floats, Floats]:
    return np.array([float(e.rule_score) for e in examples]), _labels(examples), _weights(examples)


def _labels(examples: Sequence[Example]) -> Floats:
    return np.array([1.0 if e.label.positive else 0.0 for e in examples])


def _weights(examples: Sequence[Example]) -> Floats:
    return np.array([e.label.weight for e in examples])


def examples_of(
    model: ScoringModel,
    *,
    email: str | None,
    traits: Mapping[str, Any],
    events: Sequence[LeadEvent],
    cycles: Mapping[int, Sequence[SalesDecision]],
    rules: LabelRules,
) -> list[Example]:
    """A lead's examples: one per cycle whose decisions make a label, with its features and
    rule score as of that cycle's first decision."""
    examples = []
    for decisions in cycles.values():
        label = label_of(decisions, rules)
        if label is None:
            continue
        seen = [e for e in events if e.occurred_at <= label.as_of]
        scored = score_lead(model, email=email, traits=traits, events=seen, at=label.as_of)
        features = lead_features(model, traits=traits, events=seen, at=label.as_of, rule_score=scored)
        examples.append(Example(features, label, scored.score, scored.grade))
    return examples
