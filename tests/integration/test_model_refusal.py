"""A scoring model that does not load is refused, with the line and rule of each error."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from services.scoring.app import create
from services.scoring.model import ModelError
from shared.settings import Settings
from tests.conftest import ROOT

DEFAULT_MODEL = ROOT / "config" / "scoring-model.yaml"


def broken_copy(tmp_path: Path) -> Path:
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    text = (config / "scoring-model.yaml").read_text().replace("min_score: 50", "min_score: fifty", 1)
    (config / "scoring-model.yaml").write_text(text)
    return config


def test_model_validate_names_the_line_and_the_rule(tmp_path: Path) -> None:
    model = broken_copy(tmp_path) / "scoring-model.yaml"
    line = next(n for n, text in enumerate(model.read_text().splitlines(), 1) if "min_score: fifty" in text)
    result = subprocess.run(
        [sys.executable, "-m", "leadflow", "model", "validate", str(model)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"line {line}: mql.min_score" in result.stderr
    good = subprocess.run(
        [sys.executable, "-m", "leadflow", "model", "validate", str(DEFAULT_MODEL)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert good.returncode == 0 and "valid" in good.stdout


def test_scoring_refuses_to_start_on_an_invalid_model(tmp_path: Path) -> None:
    settings = Settings(config_dir=broken_copy(tmp_path))
    with pytest.raises(ModelError, match=r"line \d+: mql.min_score"):
        create(settings)
