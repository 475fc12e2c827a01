"""Prometheus labels take names from the config, never values from requests or events: the
return-rate groups a config does not list are summed under `<dimension>:other`, and the
shipped lists name what routing and the SLA config name."""

from __future__ import annotations

from pathlib import Path

from services.feedback.config_files import load_feedback_config
from services.feedback.domain import metric_groups, rate_figure
from services.handoff.config_files import load_routing_config, load_sla_config

CONFIG = Path(__file__).parents[2] / "config"


def test_unlisted_values_are_summed_under_other_and_listed_ones_keep_their_series() -> None:
    figures = {
        "overall": rate_figure(4, 40),
        "source:webinar": rate_figure(3, 20),
        "campaign:spring-ada.lovelace@example": rate_figure(1, 10),
        "campaign:anything-else": rate_figure(1, 5),
        "score_band:80-99": rate_figure(2, 10),
        "owner:maya.johnson": rate_figure(1, 4),
    }
    groups = metric_groups(figures, {"source": ["webinar"]})
    assert set(groups) == {
        "overall",
        "source:webinar",
        "campaign:other",
        "score_band:80-99",
        "owner:other",
    }
    assert (groups["campaign:other"].numerator, groups["campaign:other"].denominator) == (2, 15)


def test_the_shipped_lists_name_only_teams_and_policies_the_config_has() -> None:
    listed = load_feedback_config(CONFIG / "feedback.yaml").metric_values
    sla = load_sla_config(CONFIG / "sla.yaml")
    routing = load_routing_config(CONFIG / "routing.yaml", calendars=[c.name for c in sla.calendars])
    assert set(listed["team"]) == {t.name for t in routing.teams}
    assert set(listed["policy"]) == {p.name for p in sla.policies}
    assert "owner" not in listed and "campaign" not in listed  # rep names and campaign names stay out
