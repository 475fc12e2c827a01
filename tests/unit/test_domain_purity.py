"""Pure modules stay pure: no database, broker, web framework or HTTP client, and no files.

Domain code takes values and returns values (STYLE.md), so a unit test can call it with
plain data. Each module below is checked twice: by reading its source (what it imports,
whether it opens or reads files) and by importing it alone in a fresh interpreter (what it
pulls in, however indirectly). Add a module to PURE_MODULES when you write one; every
`domain.py`, and every module of a `domain/` package, is checked without being listed.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("services", "shared", "leadflow")

PURE_MODULES = (
    "services.intake.event_limits",
    "services.intake.tracking_mapping",
    "services.intake.tracking_schemas",
    "services.scoring.model",
    "services.scoring.identity",
    "services.scoring.incremental_scorer",
    "services.scoring.score_state",
    "services.scoring.decay_moments",
    "services.scoring.lifecycle",
    "services.scoring.backtest",
    "services.scoring.features",
    "services.scoring.feature_state",
    "services.scoring.labels",
    "services.scoring.learning_config",
    "services.scoring.learned_rules",
    "services.scoring.model_metrics",
    "services.scoring.training",
    "services.scoring.training_report",
    "services.scoring.likelihood",
    "services.scoring.recommend",
    "services.scoring.recommend_report",
    "services.scoring.accounts.matching",
    "services.scoring.accounts.account_score",
    "services.scoring.accounts.imports",
    "services.scoring.accounts.free_mail",
    "services.scoring.accounts.account_backtest",
    "services.handoff.visibility",
    "services.handoff.sla",
    "services.handoff.routing",
    "services.handoff.business_hours",
    "services.handoff.weighted_turns",
    "services.handoff.availability",
    "services.handoff.claims",
    "services.handoff.return_reasons",
    "shared.traits",
    "shared.field_errors",
    "shared.identities",
    "shared.config_errors",
    "shared.event_types",
    "shared.destinations",
    "shared.request_rules",
    "shared.sealing",
    "services.scoring.erasure",
    "shared.retention_policy",
)

# Neither imported by a pure module nor loaded, however indirectly, by importing one.
FORBIDDEN_PACKAGES = ("sqlalchemy", "asyncpg", "aiokafka", "fastapi", "starlette", "httpx")
# A pure module may reach YAML through no one else's code either, but it must not parse
# files itself: it gets the loaded values (see shared/yaml_config.py and config_files.py).
NOT_IMPORTED = (*FORBIDDEN_PACKAGES, "yaml")
FILE_READING_METHODS = ("read_text", "read_bytes", "open")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def discovered_domain_modules() -> list[str]:
    found = set()
    for package in PACKAGES:
        found |= {module_name(p) for p in (ROOT / package).rglob("domain.py")}
        found |= {module_name(p) for d in (ROOT / package).rglob("domain") for p in d.rglob("*.py")}
    return sorted(found)


def pure_modules() -> list[str]:
    return sorted({*PURE_MODULES, *discovered_domain_modules()})


def source_of(module: str, root: Path = ROOT) -> Path:
    path = root.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def impurities(source: str) -> list[str]:
    """What the source imports that it must not, and every call that reads a file."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in NOT_IMPORTED]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in NOT_IMPORTED:
                found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Call):
            function = node.func
            if isinstance(function, ast.Name) and function.id == "open":
                found.append(f"open() at line {node.lineno}")
            elif isinstance(function, ast.Attribute) and function.attr in FILE_READING_METHODS:
                found.append(f".{function.attr}() at line {node.lineno}")
            elif (
                isinstance(function, ast.Attribute)
                and isinstance(function.value, ast.Name)
                and function.value.id == "yaml"
                and "load" in function.attr
            ):
                found.append(f"yaml.{function.attr}() at line {node.lineno}")
    return found


def loaded_forbidden_packages(module: str, *, path: Path = ROOT) -> list[str]:
    """The forbidden packages in sys.modules after importing `module` alone, fresh."""
    script = textwrap.dedent(
        f"""
        import importlib, sys
        importlib.import_module({module!r})
        loaded = {{name.split(".")[0] for name in sys.modules}}
        print(" ".join(sorted(loaded & {set(FORBIDDEN_PACKAGES)!r})))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=path, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_every_listed_module_exists_and_the_domain_modules_are_found():
    missing = [m for m in PURE_MODULES if not source_of(m).is_file()]
    assert missing == []
    assert {"services.intake.domain", "services.scoring.domain", "services.handoff.domain"} <= set(
        discovered_domain_modules()
    )


@pytest.mark.parametrize("module", pure_modules())
def test_a_pure_module_imports_no_io_library_and_reads_no_file(module: str):
    assert impurities(source_of(module).read_text()) == []


@pytest.mark.parametrize("module", pure_modules())
def test_importing_a_pure_module_loads_no_io_library(module: str):
    assert loaded_forbidden_packages(module) == []


# --- the checks catch what they are for ------------------------------------------------------

IMPURE_SOURCES = {
    "import sqlalchemy.ext.asyncio": "import sqlalchemy.ext.asyncio",
    "from fastapi import FastAPI": "from fastapi import ...",
    "import yaml": "import yaml",
    "rows = open('leads.csv').read()": "open() at line 1",
    "from pathlib import Path\nplan = Path('plan.yaml').read_text()": ".read_text() at line 2",
    "def key(path):\n    return path.read_bytes()": ".read_bytes() at line 2",
    "def lines(path):\n    with path.open() as f:\n        return list(f)": ".open() at line 2",
    "def plan(text, yaml):\n    return yaml.safe_load(text)": "yaml.safe_load() at line 2",
}


@pytest.mark.parametrize(("source", "impurity"), IMPURE_SOURCES.items())
def test_the_source_check_refuses_an_impure_module(source: str, impurity: str):
    assert impurities(source) == [impurity]


def test_the_import_check_sees_a_forbidden_package_pulled_in_indirectly(tmp_path: Path):
    (tmp_path / "looks_pure.py").write_text("import goes_online\n")
    (tmp_path / "goes_online.py").write_text("import httpx\n")
    assert impurities((tmp_path / "looks_pure.py").read_text()) == []
    assert loaded_forbidden_packages("looks_pure", path=tmp_path) == ["httpx"]


@pytest.mark.parametrize("package", FORBIDDEN_PACKAGES)
def test_both_checks_refuse_a_pure_module_given_a_forbidden_import(tmp_path: Path, package: str):
    pure = source_of("shared.traits").read_text()
    (tmp_path / "traits_online.py").write_text(f"{pure}\nimport {package}\n")
    assert impurities((tmp_path / "traits_online.py").read_text()) == [f"import {package}"]
    assert package in loaded_forbidden_packages("traits_online", path=tmp_path)
