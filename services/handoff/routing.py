"""Routing: which rep or queue owns a new handoff.

Rules are tried in file order; the first whose conditions all hold assigns the handoff, to a
named owner or queue or round-robin within a team. No rule matches: the fallback queue.
Pure: the service keeps each team's round-robin counter and passes it in as `turn`, and
`config_files.load_routing_config` reads the file.
"""

import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Self

import pydantic
from pydantic import BeforeValidator, Field, model_validator

from shared.config_errors import Loc, PydanticWordedConfigError
from shared.traits import employees

_STRICT = pydantic.ConfigDict(extra="forbid", frozen=True)


class RoutingConfigError(PydanticWordedConfigError):
    """The routing file cannot be used; each problem names its line and what is wrong."""

    what = "routing config"


def _country_code(value: Any) -> Any:
    if isinstance(value, bool):  # the "Norway problem": YAML 1.1 reads a bare NO as false
        raise ValueError('YAML reads this as true/false; quote country codes, e.g. "NO"')
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z]{2}", value):
        raise ValueError("must be a 2-letter ISO country code, e.g. DE")
    return value.upper()


Country = Annotated[str, BeforeValidator(_country_code)]
Name = Annotated[str, Field(min_length=1)]


@dataclass(frozen=True)
class _Lead:
    """What rules look at, read leniently from the lead's traits: unknown means no match."""

    country: str | None
    company_size: int | None
    policy: str


class RouteMatch(pydantic.BaseModel):
    """Conditions a lead must all meet; a condition left empty holds for everyone."""

    model_config = _STRICT

    countries: list[Country] = []
    regions: list[Name] = []
    # Inclusive bounds on the number of employees.
    min_company_size: int | None = Field(default=None, ge=0)
    max_company_size: int | None = Field(default=None, ge=0)
    # SLA policy names, e.g. only "hot" leads.
    policies: list[Name] = []

    @model_validator(mode="after")
    def _sizes_in_order(self) -> Self:
        low, high = self.min_company_size, self.max_company_size
        if low is not None and high is not None and low > high:
            raise ValueError(f"min_company_size {low} is above max_company_size {high}")
        return self

    def holds(self, lead: _Lead, regions: Mapping[str, list[str]]) -> bool:
        size = lead.company_size
        return (
            (not self.countries or lead.country in self.countries)
            and (not self.regions or any(lead.country in regions[r] for r in self.regions))
            and (self.min_company_size is None or (size is not None and size >= self.min_company_size))
            and (self.max_company_size is None or (size is not None and size <= self.max_company_size))
            and (not self.policies or lead.policy in self.policies)
        )


class Assignment(pydantic.BaseModel):
    """Exactly one of: a named owner or queue, or round-robin within a team."""

    model_config = _STRICT

    owner: Name | None = None
    team: Name | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.owner is None) == (self.team is None):
            given = "both" if self.owner is not None else "neither"
            raise ValueError(f"assign names an owner or a team, exactly one; got {given}")
        return self


class RoutingRule(pydantic.BaseModel):
    model_config = _STRICT

    name: Name
    when: RouteMatch = Field(default_factory=RouteMatch)
    assign: Assignment


class Team(pydantic.BaseModel):
    model_config = _STRICT

    name: Name
    members: list[Name]
    # Name of a calendar in the SLA config: the team's working hours.
    calendar: Name | None = None
    manager: Name | None = None

    @model_validator(mode="after")
    def _can_take_turns(self) -> Self:
        if not self.members:
            raise ValueError(f"team {self.name!r} has no members; round-robin needs at least one")
        repeated = sorted({m for m in self.members if self.members.count(m) > 1})
        if repeated:
            raise ValueError(f"team {self.name!r} lists {', '.join(repeated)} more than once")
        return self


class RoutingConfig(pydantic.BaseModel):
    model_config = _STRICT

    teams: list[Team] = []
    rules: list[RoutingRule] = []
    fallback_queue: Name = "inbound-queue"
    # Region name -> ISO country codes, e.g. emea: [DE, FR, GB].
    regions: dict[Name, list[Country]] = {}

    @model_validator(mode="after")
    def _references_exist(self) -> Self:
        for kind, names in (("team", [t.name for t in self.teams]), ("rule", [r.name for r in self.rules])):
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"{kind} names must be unique; repeated: {', '.join(repeated)}")
        teams = {t.name for t in self.teams}
        for rule in self.rules:
            if rule.assign.team is not None and rule.assign.team not in teams:
                raise ValueError(
                    f"rule {rule.name!r} assigns to unknown team {rule.assign.team!r} "
                    f"(teams: {', '.join(sorted(teams)) or 'none defined'})"
                )
            for region in rule.when.regions:
                if region not in self.regions:
                    raise ValueError(
                        f"rule {rule.name!r} names unknown region {region!r} "
                        f"(regions: {', '.join(sorted(self.regions)) or 'none defined'})"
                    )
        return self

    def team_named(self, name: str) -> Team:
        for team in self.teams:
            if team.name == name:
                return team
        raise KeyError(f"no team named {name!r}")


@dataclass(frozen=True)
class RouteDecision:
    owner: str
    team: str | None
    # None when no rule matched and the fallback queue took the lead.
    rule: str | None


def route(config: RoutingConfig, *, traits: Mapping[str, Any], policy: str, turn: int) -> RouteDecision:
    """Who owns a new handoff: the first matching rule's assignee, else the fallback queue.

    `turn` is the assigned team's round-robin counter; the member at `turn % size` gets the lead.
    """
    lead = _Lead(_country_of(traits.get("country")), employees(traits.get("company_size")), policy)
    for rule in config.rules:
        if not rule.when.holds(lead, config.regions):
            continue
        match rule.assign:
            case Assignment(team=str(team)):
                members = config.team_named(team).members
                return RouteDecision(owner=members[turn % len(members)], team=team, rule=rule.name)
            case Assignment(owner=str(owner)):
                return RouteDecision(owner=owner, team=None, rule=rule.name)
    return RouteDecision(owner=config.fallback_queue, team=None, rule=None)


def unknown_calendars(config: RoutingConfig, calendars: Collection[str]) -> Iterator[tuple[Loc, str]]:
    """Each team whose calendar is not one of `calendars` (the SLA config's calendar names)."""
    for i, team in enumerate(config.teams):
        if team.calendar is not None and team.calendar not in calendars:
            yield (
                ("teams", i, "calendar"),
                f"team {team.name!r} names calendar {team.calendar!r}, which the SLA config "
                f"does not define (calendars: {', '.join(sorted(calendars)) or 'none'})",
            )


def _country_of(value: Any) -> str | None:
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z]{2}", value.strip()):
        return value.strip().upper()
    return None
