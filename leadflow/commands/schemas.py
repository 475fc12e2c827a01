"""`leadflow schemas`: the event contract as files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Event schemas (JSON Schema, AsyncAPI).", no_args_is_help=True)


@app.command("export")
def schemas_export(directory: Annotated[Path, typer.Argument()] = Path("docs/schemas")) -> None:
    """Write the JSON Schema of every event and the AsyncAPI document."""
    from shared.schemas import export_schemas

    for path in export_schemas(directory):
        typer.echo(path)
