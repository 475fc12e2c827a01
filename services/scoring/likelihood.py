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
        return self.likelihoods([features], top=top)[0]

    def likelihoods(self, rows: Sequence[Mapping[str, float]], *, top: int = 3) -> list[Likelihood]:
        """Each row's likelihood and top factors, from one LightGBM call for all the rows.

        Scoring asks once per consumer batch: a LightGBM call has a fixed cost (checks, a
        matrix handed to C) that one call per lead would pay per lead."""
        if not rows:
            return []
        x = matrix(rows, self.features)
        margins = np.asarray(self._booster.predict(x, raw_score=True, num_threads=1), dtype=np.float64)
        p = self.calibration(margins)
        if top == 0:  # the values alone: no contributions to compute
            return [Likelihood(value=round(float(v) * 100), model_version=self.version) for v in p]
        # The contributions (TreeSHAP) cost some 50 times the prediction: asked only for top factors.
        contributions = np.asarray(
            self._booster.predict(x, pred_contrib=True, num_threads=1), dtype=np.float64
        ).reshape(len(rows), len(self.features) + 1)
        per_feature = contributions[:, :-1]  # the last column is the bias; they sum to the margin
        without = self.calibration(margins[:, None] - per_feature)
        points = (p[:, None] - without) * 100.0
        return [self._explained(x[r], float(p[r]), points[r], top) for r in range(len(rows))]

    def _explained(self, x: Floats, p: float, points: Floats, top: int) -> Likelihood:
        order = np.argsort(-np.abs(points))[:top]
        factors = [
            LikelihoodFactor(feature=self.features[i], value=_finite(x[i]), points=round(float(points[i]), 1))
            for i in order
            if abs(points[i]) >= 0.05
        ]
        return Likelihood(value=round(p * 100), model_version=self.version, factors=factors)


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else float(value)
