"""`leadflow model recommend`: the MQL setting (rule score and grade, likelihood, or both)
that hands off the most leads while the Wilson upper bound of the projected return rate
stays at or under the target.

Pure. The projection is over decided history: each labelled handoff, weighted by the
inverse of its propensity (an exploration handoff stands for the near misses like it
that were not drawn), counts towards a setting's volume if the setting would have handed
it off, and towards its returns if sales sent it back as not a buyer. The interval is
Wilson's on the effective number of examples (Kish: (Σw)² / Σw²), so heavy weights widen
it instead of passing for certainty. Each handoff's score, grade and likelihood are taken at
its label moment by the backtest engine's replay (`training.examples_of`, fed by
`leadflow.admin.model_training.decided_history`), as `leadflow backtest` would score it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np

from services.scoring.model import GRADES
from shared.rates import wilson_interval

Combine = Literal["rule", "likelihood", "and", "or"]
SCORES = tuple(range(0, 101, 5))
LIKELIHOODS = tuple(range(5, 100, 5))


@dataclass(frozen=True)
class Decided:
    """One labelled handoff as the search sees it: the lead's rule score, grade and likelihood
    at the label moment (the handoff), what sales decided, and its inverse-propensity weight."""

    score: int
    grade: str
    likelihood: int | None
    positive: bool
    weight: float
    lead_id: str | None = None  # which lead and moment, to audit a projection against the backtest
    at: datetime | None = None


@dataclass(frozen=True)
class Setting:
    combine: Combine
    min_score: int | None
    min_grade: str | None
    min_likelihood: int | None

    def describe(self) -> str:
        rule = f"score ≥ {self.min_score}, grade ≥ {self.min_grade}"
        likely = f"likelihood ≥ {self.min_likelihood}"
        return {
            "rule": rule,
            "likelihood": likely,
            "and": f"{rule} and {likely}",
            "or": f"{rule} or {likely}",
        }[self.combine]


@dataclass(frozen=True)
class Projection:
    setting: Setting
    volume: float  # leads handed off, IPW-weighted
    good_captured: float  # share of all good leads it hands off
    rate: float | None  # projected return rate
    ci_low: float | None
    ci_high: float | None

    def meets(self, target: float) -> bool:
        return self.ci_high is not None and self.ci_high <= target


@dataclass(frozen=True)
class Recommendation:
    target: float
    best: Projection | None  # None: no setting keeps the upper bound under the target
    curve: tuple[Projection, ...]  # the best setting's family, by threshold


def settings(has_likelihood: bool) -> Iterable[Setting]:
    grades = GRADES[:-1]
    for grade in grades:
        for score in SCORES:
            yield Setting("rule", score, grade, None)
    if not has_likelihood:
        return
    for likelihood in LIKELIHOODS:
        yield Setting("likelihood", None, None, likelihood)
        for grade in grades:
            for score in SCORES:
                yield Setting("and", score, grade, likelihood)
                yield Setting("or", score, grade, likelihood)


def recommend(decided: Sequence[Decided], *, target: float) -> Recommendation:
    """The setting of most volume whose projected return rate's upper bound is ≤ `target`."""
    scores = np.array([d.score for d in decided], dtype=np.float64)
    grades = np.array([GRADES.index(d.grade) if d.grade in GRADES else len(GRADES) for d in decided])
    likelihoods = np.array([-1 if d.likelihood is None else d.likelihood for d in decided], dtype=np.float64)
    positive = np.array([d.positive for d in decided])
    weights = np.array([d.weight for d in decided], dtype=np.float64)
    has_likelihood = bool((likelihoods >= 0).any())
    projections = [
        _project(s, scores, grades, likelihoods, positive, weights) for s in settings(has_likelihood)
    ]
    feasible = [p for p in projections if p.meets(target)]
    best = max(feasible, key=lambda p: (p.volume, -(p.rate or 0.0)), default=None)
    family = best.setting.combine if best else "rule"
    curve = _curve(projections, best, family)
    return Recommendation(target, best, curve)


def _project(
    setting: Setting,
    scores: np.ndarray,
    grades: np.ndarray,
    likelihoods: np.ndarray,
    positive: np.ndarray,
    weights: np.ndarray,
) -> Projection:
    by_rule = (scores >= (setting.min_score or 0)) & (grades <= GRADES.index(setting.min_grade or "D"))
    likely = likelihoods >= (setting.min_likelihood or 0)
    chosen = {"rule": by_rule, "likelihood": likely, "and": by_rule & likely, "or": by_rule | likely}[
        setting.combine
    ]
    w = weights[chosen]
    volume = float(np.sum(w))
    good_total = float(np.sum(weights[positive]))
    captured = float(np.sum(weights[chosen & positive])) / good_total if good_total else 0.0
    if volume <= 0:
        return Projection(setting, 0.0, captured, None, None, None)
    returned = float(np.sum(weights[chosen & ~positive]))
    rate = returned / volume
    n_effective = max(1, round(volume**2 / float(np.sum(w**2))))
    low, high = wilson_interval(min(n_effective, round(rate * n_effective)), n_effective)
    return Projection(setting, volume, captured, rate, low, high)


def _curve(projections: Sequence[Projection], best: Projection | None, family: str) -> tuple[Projection, ...]:
    """The trade-off of the best setting's family: one row per threshold, most volume first."""
    if best is None:
        rows = [p for p in projections if p.setting.combine == "rule" and p.setting.min_grade == "B"]
    else:
        s = best.setting
        rows = [
            p
            for p in projections
            if p.setting.combine == family
            and (family == "likelihood" or p.setting.min_grade == s.min_grade)
            and (family in ("rule", "likelihood") or p.setting.min_score == s.min_score)
        ]
    return tuple(sorted(rows, key=lambda p: -p.volume))
