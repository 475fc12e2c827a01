"""`leadflow privacy`: erase a person (GDPR Art. 17) everywhere; see docs/privacy.md."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from shared.settings import get_settings

app = typer.Typer(help="Erasure of a person's data (docs/privacy.md).", no_args_is_help=True)


@app.command("erase")
def privacy_erase(
    email: Annotated[str | None, typer.Argument(help="the person's email")] = None,
    lead_id: Annotated[str | None, typer.Option(help="erase by lead id instead")] = None,
    wait: Annotated[
        float, typer.Option(help="seconds to wait for every service to confirm; 0: do not")
    ] = 120,
) -> None:
    """Erase a person by email (or --lead-id): keys destroyed, rows erased, email suppressed.

    Prints the request's state as JSON; exits 1 if it was not completed within --wait.
    """
    from leadflow.admin.privacy import ErasureRefused, erase

    if (email is None) == (lead_id is None):
        raise typer.BadParameter("give an EMAIL or --lead-id")
    try:
        state = asyncio.run(erase(get_settings(), email=email, lead_id=lead_id, wait_s=wait or None))
    except ErasureRefused as refused:
        typer.echo(str(refused), err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(state, indent=2))
    if wait and state["state"] != "completed":
        typer.echo(
            f"not completed within {wait:g} s; follow it with GET /v1/erasures/{state['request_id']}",
            err=True,
        )
        raise typer.Exit(1)
