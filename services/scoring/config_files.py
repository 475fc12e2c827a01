"""Loading the scoring model (config/scoring-model.yaml) and the learning config
(config/learning.yaml): the edge where scoring reads files, so their schemas stay pure."""

from __future__ import annotations

from pathlib import Path

from services.scoring.learning_config import LearningConfig, LearningFileError
from services.scoring.model import ModelError, ScoringModel, rule_problems
from shared.yaml_config import load_config, parse_config


def load_model(path: str | Path) -> ScoringModel:
    """Read and validate a model file; raises ModelError naming the file and line."""
    return load_config(path, ScoringModel, ModelError, check=rule_problems)


def parse_model(text: str, source: str = "<model>") -> ScoringModel:
    """Validate model YAML text; raises ModelError naming `source` and the line."""
    return parse_config(text, ScoringModel, ModelError, source=source, check=rule_problems)


def load_learning_config(path: str | Path) -> LearningConfig:
    """Read and validate config/learning.yaml; a missing file means the defaults (learning off)."""
    if not Path(path).exists():
        return LearningConfig()
    return load_config(path, LearningConfig, LearningFileError, empty_means_defaults=True)
