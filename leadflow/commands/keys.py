"""`leadflow keys`: API keys."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from shared.settings import get_settings

app = typer.Typer(help="Manage API keys.", no_args_is_help=True)


@app.command("create")
def keys_create(
    scope: Annotated[list[str], typer.Option("--scope", "-s", help="repeat for several scopes")],
    name: Annotated[str, typer.Option(help="who or what uses the key")] = "cli",
    owner: Annotated[str | None, typer.Option(help="the rep a handoffs key belongs to")] = None,
) -> None:
    """Create an API key with scopes; the key is printed once and stored hashed."""
    from leadflow.admin.keys import create_key
    from shared.auth import Scope

    try:
        scopes = [Scope(s) for s in scope]
    except ValueError as exc:
        raise typer.BadParameter(f"{exc}; scopes: {', '.join(s.value for s in Scope)}") from exc
    key, key_id = asyncio.run(create_key(get_settings(), name=name, scopes=scopes, owner=owner))
    typer.echo(key)
    typer.echo(f"key id {key_id}, scopes {', '.join(scopes)}", err=True)
