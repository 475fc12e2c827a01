"""The `leadflow` command: run services, the embedded stack, and operator tools."""

from __future__ import annotations

import asyncio
import gc
import importlib
from pathlib import Path
from typing import Annotated

import typer

from shared.settings import SERVICES, ServiceName, get_settings

app = typer.Typer(help="leadflow: real-time lead qualification on Kafka.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
schemas_app = typer.Typer(help="Event schemas (JSON Schema, AsyncAPI).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(schemas_app, name="schemas")
model_app = typer.Typer(help="The scoring model.", no_args_is_help=True)
app.add_typer(model_app, name="model")
feedback_app = typer.Typer(help="The feedback service's facts.", no_args_is_help=True)
app.add_typer(feedback_app, name="feedback")


@app.command()
def serve(service: Annotated[str, typer.Argument(help="intake | scoring | handoff | feedback")]) -> None:
    """Run one service (HTTP API, consumer, outbox relay and timers) in this process."""
    import uvicorn

    from shared.logging import configure_logging

    if service not in SERVICES:
        raise typer.BadParameter(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    name: ServiceName = service
    settings = get_settings()
    configure_logging(service=name, level=settings.log_level, json=settings.json_logs)
    module = importlib.import_module(f"services.{name}.app")
    web = module.create(settings)
    # What exists now (modules, models, config) lives as long as the process: keep the
    # collector from rescanning it, which would otherwise show as latency spikes.
    gc.collect()
    gc.freeze()
    config = uvicorn.Config(
        web,
        host=settings.host,
        port=settings.port_of(name),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        # httptools: a third less CPU per request than h11. Its 400s "under load" came from the
        # bench client sending Content-Length twice, which llhttp rightly refuses.
        http="httptools",
        loop="uvloop",
    )
    uvicorn.Server(config).run()


@app.command()
def dev() -> None:
    """Start broker, Postgres, the four services and demo traffic; Ctrl-C stops all."""
    from leadflow.dev import run_dev

    raise typer.Exit(run_dev(get_settings()))


@app.command()
def migrate() -> None:
    """Create the topics and run every service's migrations, then exit."""
    from leadflow.operations import migrate_all

    asyncio.run(migrate_all(get_settings()))
    typer.echo("topics and migrations are up to date")


@keys_app.command("create")
def keys_create(
    scope: Annotated[list[str], typer.Option("--scope", "-s", help="repeat for several scopes")],
    name: Annotated[str, typer.Option(help="who or what uses the key")] = "cli",
    owner: Annotated[str | None, typer.Option(help="the rep a handoffs key belongs to")] = None,
) -> None:
    """Create an API key with scopes; the key is printed once and stored hashed."""
    from leadflow.operations import create_key
    from shared.auth import Scope

    try:
        scopes = [Scope(s) for s in scope]
    except ValueError as exc:
        raise typer.BadParameter(f"{exc}; scopes: {', '.join(s.value for s in Scope)}") from exc
    key, key_id = asyncio.run(create_key(get_settings(), name=name, scopes=scopes, owner=owner))
    typer.echo(key)
    typer.echo(f"key id {key_id}, scopes {', '.join(scopes)}", err=True)


@schemas_app.command("export")
def schemas_export(directory: Annotated[Path, typer.Argument()] = Path("docs/schemas")) -> None:
    """Write the JSON Schema of every event and the AsyncAPI document."""
    from shared.schemas import export_schemas

    for path in export_schemas(directory):
        typer.echo(path)


@feedback_app.command("rebuild")
def feedback_rebuild() -> None:
    """Rebuild feedback's facts by replaying lead.lifecycle from the beginning (alerts stay)."""
    from leadflow.operations import rebuild_feedback

    summary = asyncio.run(rebuild_feedback(get_settings()))
    typer.echo(
        f"rebuilt {summary.handoffs} handoffs from {summary.applied} events "
        f"({summary.messages} messages read, {summary.duplicates} duplicates, "
        f"{summary.unreadable} unreadable) in {summary.seconds:.1f} s"
    )


@model_app.command("validate")
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


@app.command()
def rescore(
    model: Annotated[Path | None, typer.Option(help="model file; default: the configured one")] = None,
) -> None:
    """Recompute every lead under the model; events go out only for MQL status changes."""
    from leadflow.operations import rescore as run_rescore
    from services.scoring.config_files import load_model

    settings = get_settings()
    summary = asyncio.run(
        run_rescore(settings, load_model(model or settings.config_file("scoring-model.yaml")))
    )
    typer.echo(
        f"rescored {summary.leads} leads under model {summary.model_version}: {summary.changed} changed, "
        f"{summary.became_mql} became MQL, {summary.stopped_qualifying} MQLs no longer qualify"
    )


@app.command()
def backtest(
    model: Annotated[Path, typer.Option(help="the candidate model file")],
    since: Annotated[str, typer.Option(help="how far back to replay, e.g. 90d")] = "90d",
    current: Annotated[
        Path | None, typer.Option(help="model to compare with; default: the configured one")
    ] = None,
) -> None:
    """What would this model do? Replays stored events through it and the current model."""
    from rich.console import Console

    from leadflow.operations import backtest as run_backtest
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


@app.command()
def replay(
    topic: Annotated[str, typer.Argument(help="topic name without the prefix, e.g. lead.events")],
    group: Annotated[str | None, typer.Option(help="consumer group to rewind")] = None,
    service: Annotated[
        str | None, typer.Option(help="shortcut for that service's group, e.g. scoring")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="ISO time, e.g. 2026-11-01T00:00:00Z; default: the beginning")
    ] = None,
) -> None:
    """Rewind a consumer group so its service re-reads a topic (stop the service first)."""
    from datetime import datetime

    from leadflow.operations import replay as run_replay
    from shared.topics import Topics

    settings = get_settings()
    if (group is None) == (service is None):
        raise typer.BadParameter("give exactly one of --group and --service")
    group_id = group or f"{settings.topic_prefix}leadflow-{service}"
    start = datetime.fromisoformat(since) if since else None
    offsets = asyncio.run(
        run_replay(settings, topic=Topics(settings.topic_prefix).name(topic), group=group_id, since=start)
    )
    typer.echo(
        f"{group_id} will re-read {topic} from " + ", ".join(f"p{p}@{o}" for p, o in sorted(offsets.items()))
    )


@app.command()
def demo(
    url: Annotated[str | None, typer.Option(help="intake base URL")] = None,
    rate: Annotated[float | None, typer.Option(help="events per second")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Post realistic demo traffic (buyers, students, procurement, tire kickers) to intake."""
    import signal

    from leadflow.demo import run_demo

    settings = get_settings()

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        return await run_demo(
            url or settings.url_of("intake"),
            settings.admin_key,
            rate_per_s=rate or settings.demo_rate,
            stop=stop,
            seed=seed,
        )

    sent = asyncio.run(main())
    typer.echo(f"demo sent {sent} events")


@app.command()
def bench(
    only: Annotated[
        str | None, typer.Option(help="run one part alone: handoff (the handoff API latency)")
    ] = None,
) -> None:
    """Measure throughput and latency against ceilings from the same run."""
    from leadflow.bench import main

    if only not in (None, "handoff"):
        raise typer.BadParameter(f"unknown part {only!r}; one of: handoff")
    main(only)
