"""Loading intake's config files (config/tracking-plan.yaml, config/tracking-mapping.yaml): the
edge where intake reads files."""

from __future__ import annotations

import functools
from pathlib import Path

from services.intake.domain import TrackingPlan, TrackingPlanError
from services.intake.tracking_mapping import TrackMapping, TrackMappingError, unknown_types
from shared.yaml_config import load_config


def load_tracking_plan(path: str | Path) -> TrackingPlan:
    """Read and validate the tracking plan; raises TrackingPlanError naming the file and line."""
    return load_config(path, TrackingPlan, TrackingPlanError)


def load_tracking_mapping(path: str | Path, plan: TrackingPlan) -> TrackMapping:
    """Read the track-name mapping; a name mapped to a type the plan lacks refuses to load."""
    return load_config(
        path, TrackMapping, TrackMappingError, check=functools.partial(unknown_types, plan=plan)
    )
