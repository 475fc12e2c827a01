"""`leadflow retention`: prune what is past its retention, by hand."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from shared.settings import get_settings

app = typer.Typer(help="Retention: what each service keeps, and for how long.", no_args_is_help=True)


@app.command("run")
def retention_run(
    service: Annotated[
        str | None, typer.Option(help="only this service (scoring, handoff, feedback)")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="count what would go; delete nothing")] = False,
) -> None:
    """Prune every service's data past its retention now, as each service does every interval.

    Safe while the services run: it takes the same per-table advisory locks.
    """
    from leadflow.admin.retention import RETAINING, describe, run_by_hand

    if service is not None and service not in RETAINING:
        raise typer.BadParameter(f"{service} keeps no tables: choose among {', '.join(RETAINING)}")
    services = [s for s in RETAINING if service in (None, s)]
    done = asyncio.run(run_by_hand(get_settings(), services, dry_run=dry_run))
    for name, pruned in done.items():
        for one in pruned:
            typer.echo(describe(name, one, dry_run=dry_run))
