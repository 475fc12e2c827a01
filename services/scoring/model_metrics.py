"""How good a probability is, on examples it was not trained on: AUC, log loss, Brier score,
calibration by decile and the lift of the top decile. Pure (numpy), weighted throughout so
inverse-propensity weights of exploration handoffs count as they should.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float64]
_EPS = 1e-12
_RIDGE = 1.0


@dataclass(frozen=True)
class Decile:
    decile: int  # 1 = the highest predictions
    count: int
    predicted: float  # mean predicted probability
    observed: float  # share of positives


@dataclass(frozen=True)
class Metrics:
    examples: int
    positives: int
    auc: float | None
    log_loss: float
    brier: float
    top_decile_lift: float | None
    deciles: tuple[Decile, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "examples": self.examples,
            "positives": self.positives,
            "auc": self.auc,
            "log_loss": self.log_loss,
            "brier": self.brier,
            "top_decile_lift": self.top_decile_lift,
            "deciles": [d.__dict__ for d in self.deciles],
        }


def evaluate(
    y: Floats, p: Floats, weights: Floats | None = None, *, ranking: Floats | None = None
) -> Metrics:
    """The figures of predictions `p` against outcomes `y` (1 positive, 0 negative).

    AUC, deciles and lift rank by `ranking` when given (a raw score: its order is what it
    says, whatever its calibration), else by `p`."""
    w = np.ones_like(y) if weights is None else weights
    rank = p if ranking is None else ranking
    clipped = np.clip(p, _EPS, 1 - _EPS)
    log_loss = float(-np.sum(w * (y * np.log(clipped) + (1 - y) * np.log(1 - clipped))) / np.sum(w))
    brier = float(np.sum(w * (p - y) ** 2) / np.sum(w))
    deciles = by_decile(y, p, w, rank)
    base = float(np.sum(w * y) / np.sum(w)) if len(y) else 0.0
    lift = deciles[0].observed / base if deciles and base > 0 else None
    return Metrics(len(y), int(np.sum(y)), auc(y, rank, w), log_loss, brier, lift, deciles)


def auc(y: Floats, p: Floats, w: Floats) -> float | None:
    """The chance a positive is ranked above a negative (ties count half), weighted."""
    positive, negative = y == 1, y == 0
    if not positive.any() or not negative.any():
        return None
    order = np.argsort(p, kind="mergesort")
    p_sorted, y_sorted, w_sorted = p[order], y[order], w[order]
    # Walk distinct prediction values: negatives below, plus half the negatives tied.
    _, starts = np.unique(p_sorted, return_index=True)
    ends = np.append(starts[1:], len(p_sorted))
    below = 0.0
    score = 0.0
    for start, end in zip(starts, ends, strict=True):
        group_y, group_w = y_sorted[start:end], w_sorted[start:end]
        neg = float(np.sum(group_w[group_y == 0]))
        pos = float(np.sum(group_w[group_y == 1]))
        score += pos * (below + neg / 2)
        below += neg
    total = float(np.sum(w[positive])) * float(np.sum(w[negative]))
    return score / total


def by_decile(y: Floats, p: Floats, w: Floats, rank: Floats | None = None) -> tuple[Decile, ...]:
    """Ten groups of equal size by `rank` (default: the prediction), highest first: the mean
    prediction against the share observed."""
    if len(y) == 0:
        return ()
    order = np.argsort(-(p if rank is None else rank), kind="mergesort")
    groups = np.array_split(order, min(10, len(y)))
    return tuple(
        Decile(
            decile=i + 1,
            count=len(g),
            predicted=float(np.average(p[g], weights=w[g])),
            observed=float(np.average(y[g], weights=w[g])),
        )
        for i, g in enumerate(groups)
        if len(g)
    )


@dataclass(frozen=True)
class Platt:
    """Platt scaling: p = 1 / (1 + exp(-(a·x + b))), fitted by weighted Newton steps.

    A small ridge on the slope keeps it finite when the slice barely varies or separates
    perfectly (a rule score that is the same for most leads, say). The slope is kept at or
    above 0: calibration may flatten a score that does not rank, never turn it upside down."""

    a: float
    b: float

    def __call__(self, x: Floats) -> Floats:
        z = np.clip(self.a * x + self.b, -35.0, 35.0)
        return 1.0 / (1.0 + np.exp(-z))

    @classmethod
    def fit(cls, x: Floats, y: Floats, w: Floats | None = None, *, steps: int = 100) -> Platt:
        w = np.ones_like(y) if w is None else w
        # Platt's targets, softened so a perfectly separated slice still gives finite weights.
        n_pos, n_neg = float(np.sum(w * y)), float(np.sum(w * (1 - y)))
        t = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
        # Fitted on x standardised, from the base rate, with damped steps: plain Newton
        # overshoots on a slice whose x takes only a few values.
        centre, scale = float(np.average(x, weights=w)), float(np.std(x)) or 1.0
        xs = (x - centre) / scale
        base = float(np.average(t, weights=w))
        a, b = 0.0, float(np.log(base / (1 - base)))
        for _ in range(steps):
            p = 1.0 / (1.0 + np.exp(-np.clip(a * xs + b, -35.0, 35.0)))
            g = w * (p - t)
            h = w * p * (1 - p) + 1e-9
            grad = np.array([np.sum(g * xs) + _RIDGE * a, np.sum(g)])
            hess = np.array(
                [[np.sum(h * xs * xs) + _RIDGE, np.sum(h * xs)], [np.sum(h * xs), np.sum(h) + 1e-6]]
            )
            step = np.linalg.solve(hess, grad)
            step *= min(1.0, 2.0 / max(1e-12, float(np.max(np.abs(step)))))
            a, b = max(0.0, a - float(step[0])), b - float(step[1])  # a higher x never means less likely
            if float(np.max(np.abs(step))) < 1e-9:
                break
        return cls(a / scale, b - a * centre / scale)
