"""`leadflow migrate`: the topics created and every service's migrations run."""

from __future__ import annotations

import importlib
import importlib.util

from shared.auth import AUTH_MIGRATIONS, AUTH_SCHEMA
from shared.db import make_engine, migrate
from shared.kafka import ensure_topics
from shared.settings import SERVICES, Settings
from shared.vault import PRIVACY_MIGRATIONS, PRIVACY_SCHEMA


async def migrate_all(settings: Settings) -> None:
    await ensure_topics(settings)
    engine = make_engine(settings, bounded=False)
    try:
        await migrate(engine, schema=AUTH_SCHEMA, versions_dir=AUTH_MIGRATIONS)
        await migrate(engine, schema=PRIVACY_SCHEMA, versions_dir=PRIVACY_MIGRATIONS)
        for name in SERVICES:
            if importlib.util.find_spec(f"services.{name}.store") is None:
                continue  # a service without tables of its own (intake)
            versions = importlib.import_module(f"services.{name}.store").MIGRATIONS
            await migrate(engine, schema=name, versions_dir=versions)
    finally:
        await engine.dispose()
