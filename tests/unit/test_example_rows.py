"""Training holds its examples compactly (ExampleRows); the matrix and the vocabulary it
gives are exactly those of the examples' feature dicts, so the model is the same."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np

from services.scoring.labels import Label
from services.scoring.learning_config import TrainingSettings
from services.scoring.training import Example, ExampleRows, matrix, train, vocabulary

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def example(n: int, features: dict[str, float]) -> Example:
    label = Label(
        positive=n % 3 == 0, as_of=T0 + timedelta(hours=(n * 7) % 50), weight=1.0, exploration=False
    )
    return Example(features, label, rule_score=n % 90)


def examples() -> list[Example]:
    out = []
    for n in range(120):
        features = {"rule_score": float(n % 90), f"industry=i{n % 4}": 1.0, "count:page_view": float(n % 7)}
        if n % 2:
            features["days_since:page_view"] = float(n % 11)
        if n % 5 == 0:
            features["company_size_log"] = math.nan  # present but unknown: stays NaN, not the default
        if n % 9 == 0:
            features[f"section:s{n}"] = 1.0  # rare: below the support a feature needs
        out.append(example(n, features))
    return out


def test_the_matrix_of_the_rows_is_the_matrix_of_the_dicts() -> None:
    given = examples()
    rows = ExampleRows(given)
    features = ("company_size_log", "count:page_view", "days_since:page_view", "industry=i2", "never_seen")
    for chosen in (np.arange(len(given)), np.array([7, 3, 100, 0, 3])):
        expected = matrix([given[i].features for i in chosen], features)
        assert np.array_equal(rows.matrix(chosen, features), expected, equal_nan=True)


def test_the_vocabulary_keeps_the_commonest_features_as_the_dicts_would() -> None:
    given = examples()
    for most in (400, 4, 2):
        settings = TrainingSettings(min_feature_support=3, max_features=most)
        support = Counter(name for e in given for name, value in e.features.items() if value == value)
        common = [name for name, n in support.most_common() if n >= 3]
        assert vocabulary(given, settings) == tuple(sorted(common[:most]))
        assert vocabulary(ExampleRows(given), settings) == vocabulary(given, settings)


def test_training_on_rows_or_on_examples_gives_the_same_model() -> None:
    given = examples()
    settings = TrainingSettings(rounds=10)
    assert train(ExampleRows(given), settings).digest == train(given, settings).digest
