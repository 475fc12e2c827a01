"""Each schema's migrations form one line: branches merged in parallel must be re-chained.

`migrate` upgrades to every head, so two revisions on the same parent would both run, in an
order nobody chose; this keeps the history a single chain per schema.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

ROOT = Path(__file__).resolve().parents[2]
ALEMBIC_ENV = ROOT / "shared" / "migrations"
VERSION_DIRS = sorted(
    path
    for path in [*ROOT.glob("services/*/migrations"), *ROOT.glob("shared/*_migrations")]
    if any(path.glob("*.py"))
)


def scripts_in(versions_dir: Path) -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_ENV))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(versions_dir))
    return ScriptDirectory.from_config(config)


def test_every_schema_has_migrations_to_check() -> None:
    assert {path.parent.name for path in VERSION_DIRS} >= {"scoring", "handoff", "feedback"}


@pytest.mark.parametrize("versions_dir", VERSION_DIRS, ids=lambda path: str(path.relative_to(ROOT)))
def test_a_schemas_migrations_have_one_head(versions_dir: Path) -> None:
    heads = scripts_in(versions_dir).get_heads()
    where = versions_dir.relative_to(ROOT)
    assert len(heads) == 1, f"{where} has several heads {heads}: re-chain one onto the other"
