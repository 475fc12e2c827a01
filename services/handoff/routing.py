"""Routing: which rep or queue owns a new handoff, and why.

Rules are tried in file order; the first whose conditions all hold and that can place the
handoff assigns it: to the lead's account owner, to a named owner or queue, or to a team's
next weighted turn. Reps have weights, a cap of open handoffs and out-of-office windows;
a rep who is away or full is passed over (see `route`). No rule places it: the fallback queue.
Pure: the store passes in what it knows now (`RoutingState`: cursors, open handoffs, windows
set over the API) and applies the decision only if that still holds (`TurnTaken`, `capacity`);
`config_files.load_routing_config` reads the file.
"""

import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Self

import pydantic
from pydantic import AwareDatetime, BeforeValidator, Field, model_validator

from services.handoff.availability import AwayWindow, away_window
from services.handoff.weighted_turns import turns_from, weighted_order
from shared.config_errors import Loc, PydanticWordedConfigError
from shared.events import AccountContext
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
    account: AccountContext | None = None


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
    # The lead's account (matched by scoring): its tier, and how sure the match is.
    account_tiers: list[Name] = []
    min_match_confidence: float | None = Field(default=None, ge=0, le=1)

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
            and (
                not self.account_tiers
                or (lead.account is not None and lead.account.tier in self.account_tiers)
            )
            and (
                self.min_match_confidence is None
                or (lead.account is not None and lead.account.confidence >= self.min_match_confidence)
            )
        )


class Assignment(pydantic.BaseModel):
    """Exactly one of: a named owner or queue, round-robin within a team, or the account's owner
    (a lead without an account owner passes on to the next rule)."""

    model_config = _STRICT

    owner: Name | None = None
    team: Name | None = None
    account_owner: bool = False

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [self.owner is not None, self.team is not None, self.account_owner]
        if sum(given) != 1:
            got = "neither" if not any(given) else "both"
            raise ValueError(f"assign names an owner, a team or account_owner: true, exactly one; got {got}")
        return self


class OutOfOffice(pydantic.BaseModel):
    """A window a rep is away: from `start` until `end`, with their offset (2026-12-24T00:00:00+01:00)."""

    model_config = _STRICT

    start: AwareDatetime
    end: AwareDatetime
    # Who takes the rep's named handoffs (as account owner) meanwhile; else the rep's backup.
    backup: Name | None = None

    @model_validator(mode="after")
    def _ends_after_start(self) -> Self:
        if self.end <= self.start:
            raise ValueError(f"end {self.end.isoformat()} is not after start {self.start.isoformat()}")
        return self


class Rep(pydantic.BaseModel):
    """A rep's routing settings: share of round-robin turns, cap of open handoffs, backup, time away."""

    model_config = _STRICT

    weight: int = Field(default=1, ge=1, le=1000)
    # Open handoffs (stages mql, sal, sql) the rep may hold; None: the file's default_capacity.
    capacity: int | None = Field(default=None, ge=0)
    backup: Name | None = None
    out_of_office: list[OutOfOffice] = []


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
    # Rep name -> weight, capacity, backup, out of office. A rep not listed has weight 1.
    reps: dict[Name, Rep] = {}
    # The cap of open handoffs of every team member and listed rep without one; None: no cap.
    default_capacity: int | None = Field(default=None, ge=0)
    _away: tuple[AwayWindow, ...] = pydantic.PrivateAttr(default=())

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
        for name, rep in self.reps.items():
            backups = [rep.backup, *(w.backup for w in rep.out_of_office)]
            if name in backups:
                raise ValueError(f"rep {name!r} names themself as their backup")
        return self

    def team_named(self, name: str) -> Team:
        for team in self.teams:
            if team.name == name:
                return team
        raise KeyError(f"no team named {name!r}")

    def weight_of(self, rep: str) -> int:
        settings = self.reps.get(rep)
        return settings.weight if settings is not None else 1

    def capacity_of(self, rep: str) -> int | None:
        """The rep's cap of open handoffs; None for no cap (queues, owners the file does not know)."""
        settings = self.reps.get(rep)
        if settings is not None and settings.capacity is not None:
            return settings.capacity
        return self.default_capacity if rep in self.rep_names() else None

    def backup_of(self, rep: str) -> str | None:
        settings = self.reps.get(rep)
        return settings.backup if settings is not None else None

    def rep_names(self) -> frozenset[str]:
        """Every rep the file knows: team members and the reps listed under `reps`."""
        return frozenset([*self.reps, *(m for team in self.teams for m in team.members)])

    def is_rep(self, name: str) -> bool:
        """A person who can hold handoffs: a rep of the file or a team's manager (not a queue)."""
        return name in self.rep_names() or any(name == team.manager for team in self.teams)

    def is_queue(self, owner: str) -> bool:
        """A team's queue or the fallback queue: handoffs there wait for a rep to claim them."""
        return owner == self.fallback_queue or any(owner == team.name for team in self.teams)

    def away_windows(self) -> tuple[AwayWindow, ...]:
        """The out-of-office windows the file sets."""
        return self._away

    def model_post_init(self, context: Any, /) -> None:
        windows = [
            AwayWindow(n, w.start, w.end, w.backup) for n, rep in self.reps.items() for w in rep.out_of_office
        ]
        self._away = tuple(windows)


class RoutingReason(StrEnum):
    """Why a handoff went to its owner; recorded in its history and on `handoff.created`."""

    ACCOUNT_OWNER = "account_owner"  # the owner of the lead's account
    TERRITORY = "territory"  # a rule's named owner
    ROUND_ROBIN = "round_robin"  # the team's next turn, nobody passed over
    CAPACITY_OVERFLOW = "capacity_overflow"  # the first choice was full: the next rep, a backup or the queue
    OOO_BACKUP = "ooo_backup"  # the named owner is away: their backup
    OOO_SKIPPED = "ooo_skipped"  # the first choice was away: the next rep or the team's queue
    FALLBACK = "fallback"  # no rule matched: the fallback queue
    CLAIMED = "claimed"  # a rep claimed it from a queue (after routing)


@dataclass(frozen=True)
class LeadToRoute:
    """What routing knows of the lead: its traits, the SLA policy chosen, its account."""

    traits: Mapping[str, Any]
    policy: str
    account: AccountContext | None = None


@dataclass(frozen=True)
class RoutingState:
    """What the store knows at the moment of routing: round-robin cursors, open handoffs per rep,
    out-of-office windows set over the API (the file's are the config's), and the instant."""

    now: datetime
    turns: Mapping[str, int] = field(default_factory=dict)
    open_handoffs: Mapping[str, int] = field(default_factory=dict)
    away: Sequence[AwayWindow] = ()


@dataclass(frozen=True)
class TurnTaken:
    """The team's cursor moves from `seen` to `next`; the store applies it only if still at `seen`."""

    team: str
    seen: int
    next: int


@dataclass(frozen=True)
class RouteDecision:
    owner: str
    team: str | None
    # None when no rule matched and the fallback queue took the lead.
    rule: str | None
    reason: RoutingReason = RoutingReason.FALLBACK
    note: str | None = None
    turn: TurnTaken | None = None
    # The owner's cap of open handoffs, when it has one: the store re-counts under a lock.
    capacity: int | None = None


def route(config: RoutingConfig, lead: LeadToRoute, state: RoutingState) -> RouteDecision:
    """Who owns a new handoff: the first matching rule that can place it, else the fallback queue.

    A named owner (the account's, or a rule's) who is away or full hands over to their backup;
    with no backup free the next rule is tried. A team takes the next weighted turn, passing
    over members who are away or full; with nobody free the handoff waits in the team's queue.
    """
    facts = _Lead(
        _country_of(lead.traits.get("country")),
        employees(lead.traits.get("company_size")),
        lead.policy,
        lead.account,
    )
    skipped = _Skips()
    for rule in config.rules:
        if not rule.when.holds(facts, config.regions):
            continue
        match rule.assign:
            case Assignment(team=str(team)):
                return _take_turn(config, team, rule.name, state, skipped)
            case Assignment(account_owner=True):
                owner = lead.account.owner if lead.account is not None else None
                if owner and (
                    decision := _named(config, owner, rule.name, RoutingReason.ACCOUNT_OWNER, state, skipped)
                ):
                    return decision
            case Assignment(owner=str(owner)):
                if decision := _named(config, owner, rule.name, RoutingReason.TERRITORY, state, skipped):
                    return decision
    return RouteDecision(
        owner=config.fallback_queue, team=None, rule=None, reason=RoutingReason.FALLBACK, note=skipped.note()
    )


class _Skips:
    """Who was passed over and why, in order: the first cause becomes the reason."""

    def __init__(self) -> None:
        self.items: list[tuple[RoutingReason, str]] = []

    def add(self, cause: RoutingReason, why: str) -> None:
        self.items.append((cause, why))

    def reason_or(self, default: RoutingReason) -> RoutingReason:
        return self.items[0][0] if self.items else default

    def note(self, *more: str) -> str | None:
        parts = [why for _, why in self.items] + list(more)
        return "; ".join(parts) if parts else None


def _unavailable(config: RoutingConfig, rep: str, state: RoutingState) -> tuple[RoutingReason, str] | None:
    """Why `rep` cannot take a handoff now (away, or at capacity), or None when they can."""
    window = away_window([*config.away_windows(), *state.away], rep, state.now)
    if window is not None:
        return RoutingReason.OOO_SKIPPED, f"{rep} away until {window.end.isoformat()}"
    cap = config.capacity_of(rep)
    held = state.open_handoffs.get(rep, 0)
    if cap is not None and held >= cap:
        return RoutingReason.CAPACITY_OVERFLOW, f"{rep} at capacity ({held}/{cap})"
    return None


def _named(
    config: RoutingConfig, owner: str, rule: str, reason: RoutingReason, state: RoutingState, skipped: _Skips
) -> RouteDecision | None:
    """The named owner if free, else their backup if free, else None (the next rule decides)."""
    blocked = _unavailable(config, owner, state)
    if blocked is None:
        return RouteDecision(
            owner, None, rule, skipped.reason_or(reason), skipped.note(), capacity=config.capacity_of(owner)
        )
    cause, why = blocked
    window = away_window([*config.away_windows(), *state.away], owner, state.now)
    backup = (window.backup if window is not None else None) or config.backup_of(owner)
    if backup is not None and backup != owner and _unavailable(config, backup, state) is None:
        by_backup = RoutingReason.OOO_BACKUP if cause is RoutingReason.OOO_SKIPPED else cause
        note = skipped.note(f"{why}: to backup {backup}")
        return RouteDecision(
            backup, None, rule, skipped.reason_or(by_backup), note, capacity=config.capacity_of(backup)
        )
    skipped.add(cause, f"{why}, no backup free" if backup else f"{why}, no backup")
    return None


def _take_turn(
    config: RoutingConfig, team: str, rule: str, state: RoutingState, skipped: _Skips
) -> RouteDecision:
    """The team's next weighted turn among members who are free; none free: the team's queue."""
    members = config.team_named(team).members
    order = weighted_order(tuple((m, config.weight_of(m)) for m in members))
    seen = state.turns.get(team, 0)
    passed_over: set[str] = set()
    for cursor, member in turns_from(order, seen):
        if member in passed_over:
            continue
        blocked = _unavailable(config, member, state)
        if blocked is None:
            return RouteDecision(
                owner=member,
                team=team,
                rule=rule,
                reason=skipped.reason_or(RoutingReason.ROUND_ROBIN),
                note=skipped.note(),
                turn=TurnTaken(team, seen, cursor + 1),
                capacity=config.capacity_of(member),
            )
        passed_over.add(member)
        skipped.add(*blocked)
    # Nobody free: the team's queue, for the first to claim it; the reason is the first skip's.
    return RouteDecision(
        team,
        team,
        rule,
        skipped.reason_or(RoutingReason.CAPACITY_OVERFLOW),
        skipped.note("nobody free: team queue"),
    )


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
