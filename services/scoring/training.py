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
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import lightgbm
import numpy as np

from services.scoring.domain import LeadEvent
from services.scoring.features import AccountFacts, default_of, lead_features
from services.scoring.incremental_scorer import TimelineScorer
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


_CHUNK = 4096


class ExampleRows:
    """Labelled examples held compactly: each feature name once (a vocabulary) and every
    example's (column, value) pairs in flat arrays, instead of a dict per example. Training
    on a million-event history keeps tens of thousands of examples; this is what keeps its
    memory flat."""

    def __init__(self, examples: Iterable[Example] = ()) -> None:
        self.names: list[str] = []
        self._column_of: dict[str, int] = {}
        self._columns = array("i")
        self._values = array("d")
        self._ends = array("q")
        self.labels: list[Label] = []
        self.rule_scores = array("i")
        self.grades: list[str] = []
        self.extend(examples)

    def __len__(self) -> int:
        return len(self.labels)

    def add(self, example: Example) -> None:
        for name, value in example.features.items():
            column = self._column_of.get(name)
            if column is None:
                column = self._column_of[name] = len(self.names)
                self.names.append(name)
            self._columns.append(column)
            self._values.append(value)
        self._ends.append(len(self._columns))
        self.labels.append(example.label)
        self.rule_scores.append(example.rule_score)
        self.grades.append(example.grade)

    def extend(self, examples: Iterable[Example]) -> None:
        for example in examples:
            self.add(example)

    def entries(self, rows: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row position, column, value) of every feature the given rows have, row by row in
        the order given and, within a row, in the order its features were named."""
        ends = np.frombuffer(self._ends, dtype=np.int64) if self._ends else np.zeros(0, np.int64)
        chosen = np.asarray(rows, dtype=np.int64)
        stop = ends[chosen]
        start = np.where(chosen > 0, ends[np.maximum(chosen - 1, 0)], 0)
        lengths = stop - start
        offsets = np.cumsum(lengths) - lengths
        at = (
            np.arange(int(lengths.sum()), dtype=np.int64)
            - np.repeat(offsets, lengths)
            + np.repeat(start, lengths)
        )
        columns = np.frombuffer(self._columns, dtype=np.int32)[at] if len(at) else np.zeros(0, np.int32)
        values = np.frombuffer(self._values, dtype=np.float64)[at] if len(at) else np.zeros(0)
        return np.repeat(np.arange(len(chosen)), lengths), columns, values

    def matrix(self, rows: Sequence[int] | np.ndarray, features: Sequence[str]) -> Floats:
        """The same matrix `matrix()` builds from the rows' feature dicts."""
        x = np.tile(np.array([default_of(name) for name in features], dtype=np.float64), (len(rows), 1))
        index = np.full(len(self.names) + 1, -1, dtype=np.int64)
        for i, name in enumerate(features):
            if (column := self._column_of.get(name)) is not None:
                index[column] = i
        chosen = np.asarray(rows, dtype=np.int64)
        for first in range(0, len(chosen), _CHUNK):  # bounded temporaries, whatever the rows
            positions, columns, values = self.entries(chosen[first : first + _CHUNK])
            wanted = index[columns]
            keep = wanted >= 0
            x[positions[keep] + first, wanted[keep]] = values[keep]
        return x


def vocabulary(examples: Sequence[Example] | ExampleRows, settings: TrainingSettings) -> tuple[str, ...]:
    """The features seen in at least `min_feature_support` examples, most common first."""
    if not isinstance(examples, ExampleRows):
        examples = ExampleRows(examples)
    return _vocabulary(examples, range(len(examples)), settings)


def _vocabulary(
    rows: ExampleRows, chosen: Sequence[int] | np.ndarray, settings: TrainingSettings
) -> tuple[str, ...]:
    # Ties in support keep the order names first appear in (as Counter.most_common does).
    _, columns, values = rows.entries(chosen)
    present = columns[values == values]
    support = np.bincount(present, minlength=len(rows.names))
    seen, first = np.unique(present, return_index=True)
    common = sorted(
        (int(c) for c in seen if support[c] >= settings.min_feature_support),
        key=lambda c: (-support[c], first[np.searchsorted(seen, c)]),
    )
    return tuple(sorted(rows.names[c] for c in common[: settings.max_features]))


def matrix(rows: Sequence[Mapping[str, float]], features: Sequence[str]) -> Floats:
    defaults = [default_of(name) for name in features]
    return np.array([[row.get(name, d) for name, d in zip(features, defaults, strict=True)] for row in rows])


def train(examples: Sequence[Example] | ExampleRows, settings: TrainingSettings) -> Trained:
    """Train, calibrate and judge on a time-based split; raises NotEnoughExamples."""
    rows = examples if isinstance(examples, ExampleRows) else ExampleRows(examples)
    as_of = [label.as_of for label in rows.labels]
    ordered = np.array(sorted(range(len(rows)), key=as_of.__getitem__), dtype=np.int64)  # stable
    labels = Counter(label.positive for label in rows.labels)
    if len(ordered) < settings.min_examples or len(labels) < 2:
        raise NotEnoughExamples(
            f"{len(ordered)} labelled examples ({labels[True]} positive, {labels[False]} negative); "
            f"training needs at least {settings.min_examples}, of both kinds"
        )
    holdout_at = _cut(len(ordered), settings.holdout_share)
    calibrate_at = _cut(holdout_at, settings.calibration_share)
    fit, calibrate, holdout = ordered[:calibrate_at], ordered[calibrate_at:holdout_at], ordered[holdout_at:]
    features = _vocabulary(rows, fit, settings)
    booster = _fit_booster(rows, fit, calibrate, features, settings)
    calibration = Platt.fit(*_margins(booster, rows, calibrate, features))
    rule_calibration = Platt.fit(*_rule_scores(rows, calibrate))
    x, y, w = _margins(booster, rows, holdout, features)
    rx, _, _ = _rule_scores(rows, holdout)
    return Trained(
        booster=booster.model_to_string(),
        features=features,
        calibration=calibration,
        window=(as_of[ordered[0]], as_of[ordered[-1]]),
        holdout_from=as_of[holdout[0]],
        model=evaluate(y, calibration(x), w),
        rule=evaluate(y, rule_calibration(rx), w, ranking=rx),
        counts={
            "trees": booster.num_trees(),
            "examples": len(ordered),
            "train": len(fit),
            "calibration": len(calibrate),
            "holdout": len(holdout),
            "positives": labels[True],
            "exploration": sum(1 for label in rows.labels if label.exploration),
        },
    )


def _cut(n: int, share: float) -> int:
    return max(1, min(n - 1, n - math.ceil(n * share)))


def _fit_booster(
    rows: ExampleRows,
    chosen: np.ndarray,
    calibrate: np.ndarray,
    features: Sequence[str],
    settings: TrainingSettings,
) -> Any:
    """The trees, up to `rounds`: with `early_stopping_rounds`, only as many as kept improving
    the calibration fold's log loss (the holdout is never looked at). Each tree is paid for on
    every likelihood and, more, on every top-factor list (TreeSHAP walks every tree)."""
    x = rows.matrix(chosen, features)
    params = {
        "objective": "binary",
        "metric": "binary_logloss",
        "learning_rate": settings.learning_rate,
        "num_leaves": settings.num_leaves,
        "min_data_in_leaf": settings.min_data_in_leaf,
        "seed": settings.seed,
        "deterministic": True,
        # A setting (default 1): threads pay only with idle cores. Inference stays
        # single-threaded (likelihood.py), where a thread pool costs more than one row's trees.
        "num_threads": settings.threads,
        "verbosity": -1,
    }
    data = lightgbm.Dataset(
        x, label=_labels(rows, chosen), weight=_weights(rows, chosen), feature_name=_safe_names(features)
    )
    if not settings.early_stopping_rounds:
        return lightgbm.train(params, data, num_boost_round=settings.rounds)
    valid = lightgbm.Dataset(
        rows.matrix(calibrate, features),
        label=_labels(rows, calibrate),
        weight=_weights(rows, calibrate),
        reference=data,
    )
    stop = lightgbm.early_stopping(settings.early_stopping_rounds, first_metric_only=True, verbose=False)
    trained = lightgbm.train(
        params, data, num_boost_round=settings.rounds, valid_sets=[valid], callbacks=[stop]
    )
    # Only the best iteration's trees are kept (the artifact and every prediction use them).
    return lightgbm.Booster(model_str=trained.model_to_string(num_iteration=trained.best_iteration))


def _safe_names(features: Sequence[str]) -> list[str]:
    """LightGBM refuses some characters in feature names; ours are kept in the artifact instead."""
    return [f"f{i}" for i in range(len(features))]


def _margins(
    booster: Any, rows: ExampleRows, chosen: np.ndarray, features: Sequence[str]
) -> tuple[Floats, Floats, Floats]:
    x = rows.matrix(chosen, features)
    raw = np.asarray(booster.predict(x, raw_score=True, num_threads=1), dtype=np.float64)
    return raw, _labels(rows, chosen), _weights(rows, chosen)


def _rule_scores(rows: ExampleRows, chosen: np.ndarray) -> tuple[Floats, Floats, Floats]:
    scores = np.frombuffer(rows.rule_scores, dtype=np.int32)[chosen].astype(np.float64)
    return scores, _labels(rows, chosen), _weights(rows, chosen)


def _labels(rows: ExampleRows, chosen: np.ndarray) -> Floats:
    return np.array([1.0 if rows.labels[i].positive else 0.0 for i in chosen])


def _weights(rows: ExampleRows, chosen: np.ndarray) -> Floats:
    return np.array([rows.labels[i].weight for i in chosen], dtype=np.float64)


def examples_of(
    model: ScoringModel,
    *,
    email: str | None,
    traits: Mapping[str, Any],
    events: Sequence[LeadEvent],
    cycles: Mapping[int, Sequence[SalesDecision]],
    rules: LabelRules,
    account: AccountFacts | None = None,
    scorer: TimelineScorer | None = None,
) -> list[Example]:
    """A lead's examples: one per cycle whose decisions make a label, with its features and
    rule score as of that cycle's first decision (and its account as stored now).

    The rule score comes from the backtest engine (incremental_scorer.TimelineScorer): one
    replay of the lead's events scores every label moment, by the code `leadflow backtest`
    runs, so training, recommend and the backtest cannot disagree on a score. Pass `scorer`
    (for `model`) when replaying many leads, to prepare the model once."""
    labels = [label for decisions in cycles.values() if (label := label_of(decisions, rules)) is not None]
    if not labels:
        return []
    if scorer is None:
        scorer = TimelineScorer(model)
    elif scorer.model is not model:
        raise ValueError("the scorer replays another model")
    moments = scorer.at_moments(
        email=email, traits=traits, events=events, moments=[label.as_of for label in labels]
    )
    examples = []
    for label, scored in zip(labels, moments, strict=True):
        features = lead_features(
            model, traits=traits, events=events, at=label.as_of, rule_score=scored, account=account
        )
        examples.append(Example(features, label, scored.score, scored.grade))
    return examples
