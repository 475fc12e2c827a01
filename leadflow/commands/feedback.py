"""`leadflow feedback`: the feedback service's facts."""

from __future__ import annotations

import asyncio

import typer

from shared.settings import get_settings

app = typer.Typer(help="The feedback service's facts.", no_args_is_help=True)


@app.command("rebuild")
def feedback_rebuild() -> None:
    """Rebuild feedback's facts by replaying lead.lifecycle from the beginning (alerts stay)."""
    from leadflow.admin.feedback_rebuild import rebuild_feedback

    summary = asyncio.run(rebuild_feedback(get_settings()))
    typer.echo(
        f"rebuilt {summary.handoffs} handoffs from {summary.applied} events "
        f"({summary.messages} messages read, {summary.duplicates} duplicates, "
        f"{summary.unreadable} unreadable) in {summary.seconds:.1f} s"
    )
