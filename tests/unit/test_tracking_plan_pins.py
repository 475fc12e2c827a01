"""What other code knows of the tracking plan is pinned to `config/tracking-plan.yaml`."""

from pathlib import Path

from services.intake.config_files import load_tracking_plan
from services.scoring.model import EVENT_TYPES

TRACKING_PLAN = Path(__file__).parents[2] / "config" / "tracking-plan.yaml"


def test_scoring_knows_exactly_the_event_types_of_the_tracking_plan():
    """A scoring rule may name only a tracked type; a type added to the plan must be scorable."""
    assert set(EVENT_TYPES) == set(load_tracking_plan(TRACKING_PLAN).types)
