"""Routing: every new handoff gets an owner, by the first rule that fits the lead, else the queue."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pydantic
import pytest

from services.handoff.config_files import load_routing_config, load_sla_config
from services.handoff.routing import (
    LeadToRoute,
    RouteDecision,
    RoutingConfig,
    RoutingConfigError,
    RoutingState,
    route,
)

CONFIG = Path(__file__).parents[2] / "config"
EMEA_REPS = ["lena.hoffmann", "julien.moreau", "oliver.grant"]


@pytest.fixture(scope="module")
def shipped() -> RoutingConfig:
    return load_routing_config(CONFIG / "routing.yaml")


NOW = datetime(2026, 12, 1, 10, tzinfo=UTC)


def owner_of(config: RoutingConfig, policy: str = "standard", turn: int = 0, **traits: Any) -> RouteDecision:
    """The decision for a lead without an account, every team's cursor at `turn`, nobody away or full."""
    state = RoutingState(now=NOW, turns={team.name: turn for team in config.teams})
    return route(config, LeadToRoute(traits=traits, policy=policy), state)


def placed(decision: RouteDecision) -> tuple[str, str | None, str | None]:
    return decision.owner, decision.team, decision.rule


def test_shipped_config_has_three_teams_and_falls_back_to_the_inbound_queue(shipped: RoutingConfig):
    assert [t.name for t in shipped.teams] == ["emea-sales", "amer-sales", "enterprise"]
    assert shipped.team_named("emea-sales").members == EMEA_REPS
    assert shipped.team_named("emea-sales").calendar == "emea"
    assert shipped.fallback_queue == "inbound-queue"


def test_team_calendars_are_calendars_of_the_sla_config():
    calendars = [c.name for c in load_sla_config(CONFIG / "sla.yaml").calendars]
    load_routing_config(CONFIG / "routing.yaml", calendars=calendars)


def test_a_german_lead_goes_to_the_emea_team(shipped: RoutingConfig):
    decision = owner_of(shipped, country="DE", company_size=200)
    assert placed(decision) == ("lena.hoffmann", "emea-sales", "emea")
    assert decision.reason == "round_robin"


def test_an_american_lead_goes_to_the_amer_team(shipped: RoutingConfig):
    decision = owner_of(shipped, country="US", company_size=200)
    assert (decision.team, decision.rule) == ("amer-sales", "amer")


def test_a_big_company_goes_to_enterprise_wherever_it_is(shipped: RoutingConfig):
    for country in ("DE", "US", "JP"):
        decision = owner_of(shipped, country=country, company_size=1000)
        assert (decision.team, decision.rule) == ("enterprise", "enterprise")


def test_a_company_just_below_the_enterprise_size_stays_regional(shipped: RoutingConfig):
    assert owner_of(shipped, country="DE", company_size=999).team == "emea-sales"


def test_team_members_take_turns_by_their_weights(shipped: RoutingConfig):
    # lena.hoffmann has weight 2 in the shipped file: two turns in every four, spread out.
    owners = [owner_of(shipped, turn=turn, country="FR").owner for turn in range(8)]
    assert owners == ["lena.hoffmann", "julien.moreau", "oliver.grant", "lena.hoffmann"] * 2


def test_a_lead_no_rule_fits_goes_to_the_fallback_queue(shipped: RoutingConfig):
    decision = owner_of(shipped, country="JP", company_size=50)
    assert placed(decision) == ("inbound-queue", None, None)
    assert decision.reason == "fallback"


def test_a_lead_with_unknown_country_and_size_goes_to_the_fallback_queue(shipped: RoutingConfig):
    assert owner_of(shipped).rule is None
    assert owner_of(shipped, country="Germany", company_size="a lot").rule is None


def test_traits_are_read_leniently(shipped: RoutingConfig):
    assert owner_of(shipped, country=" de ").team == "emea-sales"
    assert owner_of(shipped, country="DE", company_size="5000").team == "enterprise"
    assert owner_of(shipped, country="DE", company_size=True).team == "emea-sales"


def config(rules: list[dict[str, Any]], **extra: Any) -> RoutingConfig:
    teams = [{"name": "reps", "members": ["ann", "bob"]}]
    return RoutingConfig.model_validate({"teams": teams, "rules": rules, **extra})


def test_the_first_matching_rule_wins():
    rules = [
        {"name": "first", "when": {"countries": ["DE"]}, "assign": {"owner": "ann"}},
        {"name": "second", "when": {"countries": ["DE"]}, "assign": {"owner": "bob"}},
    ]
    decision = owner_of(config(rules), country="DE")
    assert placed(decision) == ("ann", None, "first") and decision.reason == "territory"


def test_a_rule_without_conditions_takes_every_lead():
    rules = [{"name": "everyone", "assign": {"team": "reps"}}]
    assert owner_of(config(rules), turn=1).owner == "bob"


def test_every_condition_of_a_rule_must_hold():
    rules = [
        {
            "name": "hot-german-midmarket",
            "when": {
                "countries": ["DE"],
                "min_company_size": 50,
                "max_company_size": 500,
                "policies": ["hot"],
            },
            "assign": {"owner": "ann"},
        }
    ]
    routing = config(rules)
    assert owner_of(routing, "hot", country="DE", company_size=500).rule == "hot-german-midmarket"
    assert owner_of(routing, "hot", country="DE", company_size=50).rule == "hot-german-midmarket"
    assert owner_of(routing, "standard", country="DE", company_size=100).rule is None
    assert owner_of(routing, "hot", country="FR", company_size=100).rule is None
    assert owner_of(routing, "hot", country="DE", company_size=501).rule is None
    assert owner_of(routing, "hot", country="DE").rule is None


def test_a_rule_can_name_a_queue_instead_of_a_team():
    rules = [{"name": "hot", "when": {"policies": ["hot"]}, "assign": {"owner": "hot-queue"}}]
    assert placed(owner_of(config(rules), "hot")) == ("hot-queue", None, "hot")


@pytest.mark.parametrize(
    ("routing", "problem"),
    [
        ({"rules": [{"name": "r", "assign": {"team": "ghosts"}}]}, "unknown team 'ghosts'"),
        ({"teams": [{"name": "empty", "members": []}]}, "team 'empty' has no members"),
        ({"teams": [{"name": "t", "members": ["ann", "ann"]}]}, "lists ann more than once"),
        ({"rules": [{"name": "r", "assign": {"owner": "ann", "team": "t"}}]}, "exactly one; got both"),
        (
            {"rules": [{"name": "r", "assign": {"owner": "a", "account_owner": True}}]},
            "exactly one; got both",
        ),
        ({"reps": {"ann": {"weight": 0}}}, "greater than or equal to 1"),
        ({"reps": {"ann": {"capacity": -1}}}, "greater than or equal to 0"),
        ({"reps": {"ann": {"backup": "ann"}}}, "rep 'ann' names themself as their backup"),
        (
            {
                "reps": {
                    "ann": {
                        "out_of_office": [{"start": "2026-12-02T00:00:00Z", "end": "2026-12-01T00:00:00Z"}]
                    }
                }
            },
            "is not after start",
        ),
        (
            {
                "reps": {
                    "ann": {
                        "out_of_office": [{"start": "2026-12-01T00:00:00", "end": "2026-12-02T00:00:00Z"}]
                    }
                }
            },
            "timezone",
        ),
        ({"rules": [{"name": "r", "assign": {}}]}, "exactly one; got neither"),
        (
            {"rules": [{"name": "r", "when": {"regions": ["apac"]}, "assign": {"owner": "a"}}]},
            "unknown region 'apac'",
        ),
        ({"teams": [{"name": "t", "members": ["a"]}] * 2}, "team names must be unique; repeated: t"),
        ({"rules": [{"name": "r", "assign": {"owner": "a"}}] * 2}, "rule names must be unique; repeated: r"),
        (
            {
                "rules": [
                    {
                        "name": "r",
                        "when": {"min_company_size": 10, "max_company_size": 5},
                        "assign": {"owner": "a"},
                    }
                ]
            },
            "min_company_size 10 is above max_company_size 5",
        ),
        ({"regions": {"emea": ["Germany"]}}, "2-letter ISO country code"),
        ({"regions": {"emea": [False]}}, "quote country codes"),
        ({"rules": [{"name": "r", "assign": {"owner": "a"}, "unless": {}}]}, "unless"),
    ],
)
def test_a_bad_routing_config_is_refused_with_a_clear_value_error(routing: dict[str, Any], problem: str):
    with pytest.raises(ValueError) as refused:
        RoutingConfig.model_validate(routing)
    assert isinstance(refused.value, pydantic.ValidationError)
    assert problem in str(refused.value)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    return path


def test_a_bad_routing_file_is_refused_naming_the_file_and_the_problem(tmp_path: Path):
    path = write(tmp_path, "regions:\n  emea: [DE, NO]\n")
    with pytest.raises(RoutingConfigError) as refused:
        load_routing_config(path)
    assert isinstance(refused.value, ValueError)
    assert str(path) in str(refused.value)
    assert "regions.emea.1" in str(refused.value)
    assert "quote country codes" in str(refused.value)


def test_an_unreadable_or_missing_routing_file_is_refused_naming_it(tmp_path: Path):
    with pytest.raises(RoutingConfigError, match="cannot read"):
        load_routing_config(write(tmp_path, "rules: [\n"))
    with pytest.raises(RoutingConfigError, match=r"nowhere\.yaml"):
        load_routing_config(tmp_path / "nowhere.yaml")


def test_a_team_calendar_unknown_to_the_sla_config_is_refused(tmp_path: Path):
    path = write(tmp_path, "teams:\n  - {name: apac-sales, members: [kai], calendar: apac}\n")
    with pytest.raises(RoutingConfigError, match="team 'apac-sales' names calendar 'apac'"):
        load_routing_config(path, calendars=["emea", "amer"])


def test_routing_may_sit_under_a_routing_key(tmp_path: Path):
    path = write(tmp_path, "routing:\n  fallback_queue: triage\n")
    assert load_routing_config(path).fallback_queue == "triage"


def test_an_empty_routing_file_sends_everything_to_the_inbound_queue(tmp_path: Path):
    routing = load_routing_config(write(tmp_path, ""))
    assert owner_of(routing, country="DE", company_size=5000).owner == "inbound-queue"
