"""The scoring model's commands: `leadflow model validate`, and `leadflow rescore` and
`leadflow backtest` (top-level commands, registered by leadflow.commands)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from shared.settings import get_settings

app = typer.Typer(help="The scoring model.", no_args_is_help=True)


@app.command("validate")
def model_validate(path: Annotated[Path, typer.Argument(help="a scoring model YAML file")]) -> None:
    """Check a scoring model; each error names its line and the rule it breaks."""
    from services.scoring.config_files import load_model
    from services.scoring.model import ModelError

    try:
        model = load_model(path)
    except ModelError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{path}: valid (version {model.version})")


def rescore(
    model: Annotated[Path | None, typer.Option(help="model file; default: the configured one")] = None,
) -> None:
    """Recompute every lead and account under the model; events go out only for MQL and MQA status changes."""
    from leadflow.admin.rescore import rescore as run_rescore
    from services.scoring.config_files import load_model

    settings = get_settings()
    summary = asyncio.run(
        run_rescore(settings, load_model(model or settings.config_file("scoring-model.yaml")))
    )
    typer.echo(
        f"rescored {summary.leads} leads under model {summary.model_version}: {summary.changed} changed, "
        f"{summary.became_mql} became MQL, {summary.stopped_qualifying} MQLs no longer qualify"
        + (
            f"; {summary.accounts} accounts: {summary.accounts_changed} changed, "
            f"{summary.became_mqa} became MQA, {summary.stopped_mqa} no longer MQA"
            if summary.accounts
            else ""
        )
    )


def backtest(
    model: Annotated[Path, typer.Option(help="the candidate model file")],
    since: Annotated[str, typer.Option(help="how far back to replay, e.g. 90d")] = "90d",
    current: Annotated[
        Path | None, typer.Option(help="model to compare with; default: the configured one")
    ] = None,
) -> None:
    """What would this model do? Replays stored events through it and the current model."""
    from rich.console import Console

    from leadflow.admin.backtest import backtest as run_backtest
    from services.scoring.backtest import render_report
    from services.scoring.config_files import load_model
    from services.scoring.model import ModelError
    from shared.envelope import utcnow
    from shared.rates import parse_window

    settings = get_settings()
    try:
        window = parse_window(since)
        models = load_model(current or settings.config_file("scoring-model.yaml")), load_model(model)
    except (ValueError, ModelError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    report = asyncio.run(
        run_backtest(settings, current=models[0], candidate=models[1], since=utcnow() - window)
    )
    Console().print(render_report(report))


@app.command("train")
def model_train(
    since: Annotated[str, typer.Option(help="learn from decisions this far back, e.g. 365d")] = "365d",
) -> None:
    """Train the predictive model on what sales decided; print the holdout report, store it inactive."""
    from rich.console import Console

    from leadflow.admin.model_training import train_model
    from services.scoring.config_files import load_learning_config, load_model
    from services.scoring.training import NotEnoughExamples
    from services.scoring.training_report import render_training
    from shared.envelope import utcnow
    from shared.rates import parse_window

    settings = get_settings()
    try:
        window = parse_window(since)
        model = load_model(settings.config_file("scoring-model.yaml"))
        learning = load_learning_config(settings.config_file("learning.yaml"))
        run = asyncio.run(train_model(settings, model=model, learning=learning, since=utcnow() - window))
    except (ValueError, NotEnoughExamples) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    Console().print(render_training(run.trained))
    typer.echo(
        f"read {run.events} events of {run.leads} decided leads; stored model {run.trained.version} "
        f"(inactive): `leadflow model activate {run.trained.version}` to apply it"
    )


@app.command("activate")
def model_activate(
    version: Annotated[str, typer.Argument(help="a version `leadflow model train` stored")],
) -> None:
    """Make a trained model the one scoring applies (scoring picks it up within a minute)."""
    from leadflow.admin.model_training import activate_model

    if not asyncio.run(activate_model(get_settings(), version)):
        typer.echo(f"no stored model {version!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"model {version} is active")


@app.command("recommend")
def model_recommend(
    target_return_rate: Annotated[float, typer.Option(min=0.001, max=0.999, help="e.g. 0.10")] = 0.10,
    since: Annotated[str, typer.Option(help="decided history to project over, e.g. 90d")] = "90d",
) -> None:
    """The MQL setting of most volume whose projected return rate stays under the target (upper bound)."""
    from rich.console import Console

    from leadflow.admin.model_training import recommend_setting
    from services.scoring.config_files import load_learning_config, load_model
    from services.scoring.recommend_report import render_recommendation
    from shared.envelope import utcnow
    from shared.rates import parse_window

    settings = get_settings()
    try:
        window = parse_window(since)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    model = load_model(settings.config_file("scoring-model.yaml"))
    learning = load_learning_config(settings.config_file("learning.yaml"))
    recommendation = asyncio.run(
        recommend_setting(
            settings, model=model, learning=learning, since=utcnow() - window, target=target_return_rate
        )
    )
    Console().print(render_recommendation(recommendation))
    if recommendation.best is None:
        raise typer.Exit(1)
