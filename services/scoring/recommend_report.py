"""`leadflow model recommend`'s answer as printed: the trade-off curve (volume against the
projected return rate, with its Wilson interval) and the recommended setting."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from services.scoring.recommend import Projection, Recommendation


def render_recommendation(r: Recommendation) -> RenderableType:
    curve = Table(
        title=f"trade-off: MQL volume vs projected return rate (target ≤ {r.target:.0%}, upper bound)"
    )
    for column in ("setting", "volume", "good leads", "return rate", "95% interval", ""):
        curve.add_column(column, justify="left" if column in ("setting", "") else "right")
    for p in r.curve:
        curve.add_row(
            p.setting.describe(),
            f"{p.volume:,.0f}",
            f"{p.good_captured:.0%}",
            _pct(p.rate),
            f"{_pct(p.ci_low)} – {_pct(p.ci_high)}",
            "recommended" if p is r.best else ("ok" if p.meets(r.target) else ""),
        )
    return Group(curve, Text(_advice(r.best, r.target)))


def _advice(best: Projection | None, target: float) -> str:
    if best is None:
        return f"No setting keeps the upper bound of the projected return rate at or under {target:.0%}."
    s = best.setting
    lines = [
        f"Recommended: {s.describe()}: {best.volume:,.0f} handoffs, {best.good_captured:.0%} of good leads, "
        f"projected return rate {_pct(best.rate)} (95% up to {_pct(best.ci_high)}).",
    ]
    if s.combine != "likelihood":
        lines.append(
            f"  config/scoring-model.yaml: mql.min_score: {s.min_score}, mql.min_grade: {s.min_grade}"
        )
    if s.combine != "rule":
        combine = {"likelihood": "only", "and": "and", "or": "or"}[s.combine]
        lines.append(
            f"  config/learning.yaml: likelihood.min_likelihood: {s.min_likelihood}, combine: {combine}"
        )
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"
