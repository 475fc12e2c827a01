"""Loading feedback's config file (config/feedback.yaml): the edge where feedback reads files."""

from __future__ import annotations

from pathlib import Path

from services.feedback.domain import FeedbackConfig, FeedbackConfigError
from shared.yaml_config import load_config


def load_feedback_config(path: str | Path) -> FeedbackConfig:
    """Read and validate the feedback file; an empty file means all defaults."""
    return load_config(path, FeedbackConfig, FeedbackConfigError, empty_means_defaults=True)
