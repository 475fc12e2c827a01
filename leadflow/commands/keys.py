"""`leadflow keys`: API keys: create, list, revoke, rotate."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from shared.settings import get_settings

app = typer.Typer(help="Manage API keys.", no_args_is_help=True)


def _duration(text: str | None, option: str) -> timedelta | None:
    from shared.rates import parse_window

    if text is None:
        return None
    try:
        return parse_window(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from exc


@app.command("create")
def keys_create(
    scope: Annotated[list[str], typer.Option("--scope", "-s", help="repeat for several scopes")],
    name: Annotated[str, typer.Option(help="who or what uses the key")] = "cli",
    owner: Annotated[str | None, typer.Option(help="the rep a handoffs key belongs to")] = None,
    expires_in: Annotated[
        str | None, typer.Option("--expires-in", help="e.g. 24h, 30d, 2w; default: does not expire")
    ] = None,
    origin: Annotated[
        list[str] | None,
        typer.Option(help="a public (browser) key's allowed origin, e.g. https://www.example.com; repeat"),
    ] = None,
) -> None:
    """Create an API key with scopes; the key is printed once and stored hashed. With --origin it
    is a public browser key: events:write only, accepted only from those origins."""
    from pydantic import ValidationError

    from leadflow.admin.keys import create_key
    from shared.auth import Scope
    from shared.key_api import KeyCreate

    try:
        scopes = [Scope(s) for s in scope]
    except ValueError as exc:
        raise typer.BadParameter(f"{exc}; scopes: {', '.join(s.value for s in Scope)}") from exc
    try:
        origins = KeyCreate(
            name=name, scopes=scopes, public=bool(origin), allowed_origins=origin or []
        ).allowed_origins
    except ValidationError as exc:
        raise typer.BadParameter(exc.errors()[0]["msg"], param_hint="--origin") from exc
    lifetime = _duration(expires_in, "--expires-in")
    key, key_id = asyncio.run(
        create_key(
            get_settings(), name=name, scopes=scopes, owner=owner, expires_in=lifetime, origins=origins
        )
    )
    typer.echo(key)
    until = f", expires in {expires_in}" if expires_in else ""
    typer.echo(f"key id {key_id}, scopes {', '.join(scopes)}{until}", err=True)


@app.command("list")
def keys_list(
    all_keys: Annotated[bool, typer.Option("--all", help="revoked keys too")] = False,
) -> None:
    """Every key: id, status, name, scopes, owner, expiry (never the keys themselves)."""
    from leadflow.admin.keys import list_keys

    now = datetime.now(UTC)
    for record in asyncio.run(list_keys(get_settings(), include_revoked=all_keys)):
        expires = record.expires_at.isoformat(timespec="seconds") if record.expires_at else "-"
        typer.echo(
            f"{record.key_id}  {record.status(now):<7}  {record.name}  {','.join(record.scopes)}"
            f"  owner={record.owner or '-'}  expires={expires}"
        )


@app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key's id (lf_<id>_...)")]) -> None:
    """Revoke a key: running services refuse it within a second."""
    from leadflow.admin.keys import revoke_key

    record = asyncio.run(revoke_key(get_settings(), key_id))
    if record is None:
        typer.echo(f"no key {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"key {key_id} revoked", err=True)


@app.command("rotate")
def keys_rotate(
    key_id: Annotated[str, typer.Argument(help="the key's id")],
    grace: Annotated[
        str | None, typer.Option(help="the old key keeps working this long, e.g. 24h; default: ends now")
    ] = None,
) -> None:
    """Replace a key with a new one of the same name, scopes, owner and expiry (printed once)."""
    from leadflow.admin.keys import rotate_key

    overlap = _duration(grace, "--grace") or timedelta(0)
    rotated = asyncio.run(rotate_key(get_settings(), key_id, grace=overlap))
    if rotated is None:
        typer.echo(f"no active key {key_id}", err=True)
        raise typer.Exit(1)
    key, record = rotated
    typer.echo(key)
    ends = f"in {grace}" if grace else "now"
    typer.echo(f"key id {record.key_id} replaces {key_id}, which stops working {ends}", err=True)
