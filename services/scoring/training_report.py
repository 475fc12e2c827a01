"""The training report, as `leadflow model train` prints it: the holdout's figures for the
trained model and the rule score side by side, and calibration by decile."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table

from services.scoring.model_metrics import Metrics
from services.scoring.training import Trained


def render_training(trained: Trained) -> RenderableType:
    c = trained.counts
    summary = Table(title=f"model {trained.version}", show_header=False)
    summary.add_row("decisions from", f"{trained.window[0]:%Y-%m-%d} to {trained.window[1]:%Y-%m-%d}")
    summary.add_row("holdout from", f"{trained.holdout_from:%Y-%m-%d %H:%M} (newest examples)")
    summary.add_row(
        "examples",
        f"{c['examples']} ({c['positives']} positive, {c['exploration']} exploration): "
        f"{c['train']} train, {c['calibration']} calibrate, {c['holdout']} holdout",
    )
    summary.add_row("features", str(len(trained.features)))
    summary.add_row("trees", str(c.get("trees", "?")))
    summary.add_row("digest", trained.digest)
    return Group(summary, side_by_side(trained.model, trained.rule), deciles(trained.model, trained.rule))


def side_by_side(model: Metrics, rule: Metrics) -> Table:
    table = Table(title="holdout: trained model vs rule score (both calibrated)")
    table.add_column("figure")
    table.add_column("model", justify="right")
    table.add_column("rule score", justify="right")
    table.add_column("better")
    rows = [
        ("AUC", model.auc, rule.auc, True),
        ("log loss", model.log_loss, rule.log_loss, False),
        ("Brier score", model.brier, rule.brier, False),
        ("top-decile lift", model.top_decile_lift, rule.top_decile_lift, True),
    ]
    for name, ours, theirs, higher in rows:
        better = "" if ours is None or theirs is None else ("model" if (ours > theirs) == higher else "rule")
        table.add_row(name, _num(ours), _num(theirs), better if ours != theirs else "tie")
    return table


def deciles(model: Metrics, rule: Metrics) -> Table:
    table = Table(title="calibration by decile (1 = highest predictions): predicted / observed")
    table.add_column("decile", justify="right")
    table.add_column("n", justify="right")
    table.add_column("model", justify="right")
    table.add_column("rule score", justify="right")
    for ours, theirs in zip(model.deciles, rule.deciles, strict=False):
        table.add_row(
            str(ours.decile),
            str(ours.count),
            f"{ours.predicted:.1%} / {ours.observed:.1%}",
            f"{theirs.predicted:.1%} / {theirs.observed:.1%}",
        )
    return table


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
