"""The active predictive model applied to one lead: its likelihood (0–100) of being a good
lead and the top factors behind it, as Einstein shows its top factors.

Pure. LightGBM's `pred_contrib` splits a prediction's margin into one contribution per
feature; a factor's weight is how many likelihood points the lead would lose (or gain)
without that contribution, so the factors read in the same unit as the likelihood.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import lightgbm
import numpy as np

from services.scoring.model_metrics import Floats, Platt
from services.scoring.training import matrix
from shared.events import Likelihood, LikelihoodFactor


class Predictor:
    """A stored model, loaded once, asked per lead."""

    def __init__(self, version: str, booster: str, features: Sequence[str], calibration: Platt) -> None:
        self.version = version
        self.features = tuple(features)
        self.calibration = calibration
        self._booster: Any = lightgbm.Booster(model_str=booster)

    def probabilities(self, rows: Sequence[Mapping[str, float]]) -> Floats:
        if not rows:
            return np.zeros(0)
        raw = np.asarray(
            self._booster.predict(matrix(rows, self.features), raw_score=True, num_threads=1),
            dtype=np.float64,
        )
        return self.calibration(raw)

    def likelihood(self, features: Mapping[str, float], *, top: int = 3) -> Likelihood:
        x = matrix([features], self.features)
        if top == 0:  # the value alone: no contributions to compute
            value = float(self.probabilities([features])[0])
            return Likelihood(value=round(value * 100), model_version=self.version)
        contributions = np.asarray(
            self._booster.predict(x, pred_contrib=True, num_threads=1), dtype=np.float64
        )[0]
        margin = float(np.sum(contributions))
        p = float(self.calibration(np.array([margin]))[0])
        per_feature = contributions[:-1]  # the last column is the bias
        without = self.calibration(margin - per_feature)
        points = (p - without) * 100.0
        order = np.argsort(-np.abs(points))[:top]
        factors = [
            LikelihoodFactor(
                feature=self.features[i], value=_finite(x[0, i]), points=round(float(points[i]), 1)
            )
            for i in order
            if abs(points[i]) >= 0.05
        ]
        return Likelihood(value=round(p * 100), model_version=self.version, factors=factors)


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else float(value)
