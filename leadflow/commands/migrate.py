"""`leadflow migrate`: topics and migrations, then exit (the production image's one-shot job)."""

from __future__ import annotations

import asyncio

import typer

from shared.settings import get_settings


def migrate() -> None:
    """Create the topics and run every service's migrations, then exit."""
    from leadflow.admin.migrations import migrate_all

    asyncio.run(migrate_all(get_settings()))
    typer.echo("topics and migrations are up to date")
