"""The `leadflow` command: run services, the embedded stack, and operator tools.

Each command group is a module of its own; this one only assembles them. The
commands import what they run when they run, so `leadflow --help` and `leadflow
serve` load neither the dev stack nor the other commands' dependencies.
"""

from __future__ import annotations

import typer

from leadflow.commands import demo, dev, feedback, keys, migrate, model, replay, retention, schemas, serve

app = typer.Typer(help="leadflow: real-time lead qualification on Kafka.", no_args_is_help=True)
app.command()(serve.serve)
app.command()(dev.dev)
app.command()(migrate.migrate)
app.add_typer(keys.app, name="keys")
app.add_typer(schemas.app, name="schemas")
app.add_typer(model.app, name="model")
app.add_typer(feedback.app, name="feedback")
app.add_typer(retention.app, name="retention")
app.command()(model.rescore)
app.command()(model.backtest)
app.command()(replay.replay)
app.command()(demo.demo)
