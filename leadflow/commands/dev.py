"""`leadflow dev`: the embedded stack (needs the `devstack` extra, as `make run` installs)."""

from __future__ import annotations

import typer

from shared.settings import get_settings


def dev() -> None:
    """Start broker, Postgres, the four services and demo traffic; Ctrl-C stops all."""
    from leadflow.devstack.stack import run_dev

    raise typer.Exit(run_dev(get_settings()))
