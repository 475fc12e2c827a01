"""What other code knows of the tracking plan is pinned to `config/tracking-plan.yaml`."""

from pathlib import Path

import yaml

from services.scoring.model import EVENT_TYPES

TRACKING_PLAN = Path(__file__).parents[2] / "config" / "tracking-plan.yaml"


def test_scoring_knows_exactly_the_event_types_of_the_tracking_plan():
    """A scoring rule may name only a tracked type; a type added to the plan must be scorable."""
    plan = yaml.safe_load(TRACKING_PLAN.read_text(encoding="utf-8"))
    assert set(EVENT_TYPES) == set(plan["types"])
