"""`leadflow keys create`: an API key stored hashed, returned once."""

from __future__ import annotations

from shared.auth import AUTH_MIGRATIONS, AUTH_SCHEMA, KeyStore, Scope
from shared.db import make_engine, migrate
from shared.settings import Settings


async def create_key(
    settings: Settings, *, name: str, scopes: list[Scope], owner: str | None
) -> tuple[str, str]:
    engine = make_engine(settings, bounded=False)
    try:
        await migrate(engine, schema=AUTH_SCHEMA, versions_dir=AUTH_MIGRATIONS)
        return await KeyStore(engine=engine, admin_key=settings.admin_key).create(
            name=name, scopes=scopes, owner=owner
        )
    finally:
        await engine.dispose()
