"""`leadflow accounts`: scoring's accounts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from shared.settings import get_settings

app = typer.Typer(help="Accounts: the companies leads are matched to.", no_args_is_help=True)


@app.command("import")
def accounts_import(
    file: Annotated[Path, typer.Argument(help="a CRM export: CSV with a header row, or JSON lines (.jsonl)")],
    json_lines: Annotated[
        bool | None, typer.Option("--jsonl/--csv", help="the format; default: from the file's extension")
    ] = None,
) -> None:
    """Create or update accounts from a CRM export (name, domains/website, owner, tier, industry,
    size, country, external id); importing the same file again changes nothing."""
    from leadflow.admin.accounts_import import import_file
    from services.scoring.accounts.imports import ImportProblem, parse_export

    as_json = json_lines if json_lines is not None else file.suffix.lower() in (".jsonl", ".ndjson", ".json")
    try:
        records = parse_export(file.read_text(encoding="utf-8-sig"), json_lines=as_json)
    except (ImportProblem, OSError, UnicodeDecodeError) as exc:
        typer.echo(f"{file}: {exc}", err=True)
        raise typer.Exit(1) from None
    summary = asyncio.run(import_file(get_settings(), records))
    typer.echo(
        f"imported {len(records)} accounts from {file}: {summary.created} new, {summary.updated} updated"
    )
    for external_id, domain in summary.domains_taken:
        typer.echo(
            f"  {external_id}: domain {domain} already belongs to another account; left there", err=True
        )
