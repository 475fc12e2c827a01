"""Loading intake's config file (config/tracking-plan.yaml): the edge where intake reads files."""

from __future__ import annotations

from pathlib import Path

from services.intake.domain import TrackingPlan, TrackingPlanError
from shared.yaml_config import load_config


def load_tracking_plan(path: str | Path) -> TrackingPlan:
    """Read and validate the tracking plan; raises TrackingPlanError naming the file and line."""
    return load_config(path, TrackingPlan, TrackingPlanError)
