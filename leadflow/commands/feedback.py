"""`leadflow feedback`: the feedback service's facts."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from shared.settings import get_settings

app = typer.Typer(help="The feedback service's facts.", no_args_is_help=True)


@app.command("rebuild")
def feedback_rebuild(
    force: Annotated[bool, typer.Option(help="rebuild even from a topic with fewer handoffs")] = False,
) -> None:
    """Rebuild feedback's facts by replaying lead.lifecycle from the beginning (alerts stay).

    Refuses, changing nothing, when the topic yields fewer handoffs than feedback holds
    (it lost history, e.g. a broker that lost its data); --force rebuilds anyway.
    """
    from leadflow.admin.feedback_rebuild import rebuild_feedback
    from services.feedback.rebuild import HistoryShorterThanFacts

    try:
        summary = asyncio.run(rebuild_feedback(get_settings(), force=force))
    except HistoryShorterThanFacts as refused:
        typer.echo(str(refused), err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"rebuilt {summary.handoffs} handoffs from {summary.applied} events "
        f"({summary.messages} messages read, {summary.duplicates} duplicates, "
        f"{summary.unreadable} unreadable) in {summary.seconds:.1f} s"
    )
