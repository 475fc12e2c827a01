"""An account's score, grade and MQA, rolled up from its member leads.

Pure. Each member contributes a `MemberState` (its engagement points, decayed and capped per
person, as of its latest event; whether it counts as engaged; its department and seniority).
The account keeps an `Aggregate` that moves by the difference when one member changes
(`apply_change`), so the cost of a lead's change does not grow with the account: the summed
engagement is kept as its value at one instant and rescaled by the half-life when that
instant moves, which is exact for exponential decay.

Like a lead: the score is behaviour (engagement roll-up + buying-group coverage), the grade
is fit (the account's firmographics and tier), and the MQA rule asks for both plus a minimum
of engaged people.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.scoring.domain import LeadScore
from services.scoring.model import AccountFitRule, AccountModel, CoverageStep, Decay, Grade, GradeBands
from shared.events import ScoreContribution
from shared.traits import employees

SENIORITIES = (  # first match wins; titles themselves are never stored
    ("c_level", r"\b(chief|ceo|cmo|cro|coo|cto|cio|cfo|founder|owner)\b|^\s*president\b"),
    ("vp", r"\b(vp|svp|evp|avp|vice[ -]president)\b"),
    ("director", r"\bdirector\b|\bhead of\b"),
    ("manager", r"\bmanager\b|\bteam lead\b|\blead\b"),
)
# Compiled once: `seniority_of` runs for every member on every batch.
_SENIORITY_PATTERNS = tuple((name, re.compile(pattern, re.IGNORECASE)) for name, pattern in SENIORITIES)
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class MemberState:
    """What one lead brings to its account."""

    engagement: float  # capped, decayed to `as_of`
    as_of: datetime
    engaged: bool
    department: str | None
    seniority: str | None


@dataclass(frozen=True)
class Aggregate:
    """The account's running sums over its members."""

    engagement: float = 0.0  # sum of members' engagement, decayed to `engagement_at`
    engagement_at: datetime | None = None
    members: int = 0
    engaged_people: int = 0
    departments: Mapping[str, int] = field(default_factory=dict)  # engaged members per department
    seniorities: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Firmographics:
    tier: str | None
    industry: str | None
    size: int | None
    country: str | None


@dataclass(frozen=True)
class Standing:
    """An account's score, grade, engaged people and MQA as its row stores them."""

    score: int
    grade: str
    engaged_people: int
    mqa: bool


@dataclass(frozen=True)
class AccountScore:
    score: int
    fit_points: int
    grade: Grade
    engaged_people: int
    mqa: bool
    explanation: tuple[ScoreContribution, ...]


def seniority_of(title: Any) -> str | None:
    if not isinstance(title, str):
        return None
    for name, pattern in _SENIORITY_PATTERNS:
        if pattern.search(title):
            return name
    return "individual"


def member_state(
    account: AccountModel, result: LeadScore, traits: Mapping[str, Any], at: datetime
) -> MemberState:
    """A lead's share of its account: its engagement points (already decayed to its latest
    event, `at`), capped so one hyperactive person cannot carry the account."""
    engagement = math.fsum(c.points for c in result.contributions if c.kind == "engagement")
    capped = max(0.0, min(engagement, account.engagement.per_lead_cap))
    department = traits.get("department")
    return MemberState(
        engagement=capped,
        as_of=at,
        engaged=capped >= account.buying_group.engaged_min_points and capped > 0,
        department=department.strip().casefold() or None if isinstance(department, str) else None,
        seniority=seniority_of(traits.get("title")),
    )


def same_share(old: MemberState | None, new: MemberState | None) -> bool:
    """Whether a member's share is unchanged: equal to the hundredth of a point (as explanations
    round), engaged or not alike, same department and seniority. Then nothing moves."""
    if old is None or new is None:
        return old is new
    return abs(old.engagement - new.engagement) < 0.005 and (old.engaged, old.department, old.seniority) == (
        new.engaged,
        new.department,
        new.seniority,
    )


def half_life_days(account: AccountModel, lead_decay: Decay | None) -> float | None:
    if account.engagement.half_life_days is not None:
        return account.engagement.half_life_days
    return lead_decay.half_life_days if lead_decay is not None else None


def apply_change(
    aggregate: Aggregate, old: MemberState | None, new: MemberState | None, half_life: float | None
) -> Aggregate:
    """The aggregate after one member's state went from `old` to `new` (None: not a member)."""
    moments = [m.as_of for m in (old, new) if m is not None]
    at = max([*moments, *([aggregate.engagement_at] if aggregate.engagement_at else [])], default=None)
    total = _decayed(aggregate.engagement, aggregate.engagement_at, at, half_life)
    if old is not None:
        total -= _decayed(old.engagement, old.as_of, at, half_life)
    if new is not None:
        total += _decayed(new.engagement, new.as_of, at, half_life)
    departments, seniorities = dict(aggregate.departments), dict(aggregate.seniorities)
    for state, step in ((old, -1), (new, 1)):
        if state is not None and state.engaged:
            _count(departments, state.department, step)
            _count(seniorities, state.seniority, step)
    return Aggregate(
        engagement=max(0.0, total) if total > 1e-9 else 0.0,
        engagement_at=at,
        members=aggregate.members + (new is not None) - (old is not None),
        engaged_people=aggregate.engaged_people
        + bool(new is not None and new.engaged)
        - bool(old is not None and old.engaged),
        departments=departments,
        seniorities=seniorities,
    )


def score_account(account: AccountModel, firmographics: Firmographics, aggregate: Aggregate) -> AccountScore:
    """Score (engagement roll-up + buying-group coverage), grade (fit) and whether it is an MQA."""
    fit = _fit(account.fit, firmographics)
    behaviour = [
        ScoreContribution(
            rule="account.engagement",
            kind="engagement",
            points=round(aggregate.engagement, 2),
            detail=(
                f"{aggregate.members} member(s), each capped at {account.engagement.per_lead_cap:g}, decayed"
            ),
        ),
        *_coverage("people", account.buying_group.people, aggregate.engaged_people, "engaged people"),
        *_coverage(
            "departments", account.buying_group.departments, len(aggregate.departments), "departments"
        ),
        *_coverage(
            "seniorities", account.buying_group.seniorities, len(aggregate.seniorities), "seniorities"
        ),
    ]
    fit_points = sum(int(c.points) for c in fit)
    score = math.floor(math.fsum(c.points for c in behaviour) + 0.5)
    grade = _grade(account.grades, fit_points)
    mqa = account.mqa.is_met(score=score, grade=grade, engaged_people=aggregate.engaged_people)
    explanation = tuple(sorted((*fit, *behaviour), key=lambda c: (-abs(c.points), c.rule)))
    return AccountScore(score, fit_points, grade, aggregate.engaged_people, mqa, explanation)


def worth_announcing(account: AccountModel, before: Standing, after: AccountScore) -> bool:
    """Whether an account's new score is news for the bus (`account.scored`): its grade, MQA or
    engaged people changed, or its score entered another band of `announce_score_band` points.
    A member's page view moves the score by a point or two; announcing each of those would put
    an event per account on the bus for every batch its people are active in, and tell
    consumers nothing the next band will not. The stored row always has the exact score."""
    band = account.announce_score_band
    return (after.grade, after.mqa, after.engaged_people) != (
        before.grade,
        before.mqa,
        before.engaged_people,
    ) or after.score // band != before.score // band


def _decayed(value: float, since: datetime | None, at: datetime | None, half_life: float | None) -> float:
    if not value or since is None or at is None or half_life is None or at <= since:
        return value
    factor: float = 0.5 ** ((at - since).total_seconds() / SECONDS_PER_DAY / half_life)
    return value * factor


def _count(counts: dict[str, int], key: str | None, step: int) -> None:
    if key is None:
        return
    counts[key] = counts.get(key, 0) + step
    if counts[key] <= 0:
        del counts[key]


def _coverage(name: str, steps: Sequence[CoverageStep], count: int, what: str) -> list[ScoreContribution]:
    reached = [s for s in steps if count >= s.min]
    if not reached:
        return []
    best = max(reached, key=lambda s: s.min)
    detail = f"{count} {what} (at least {best.min})"
    return [
        ScoreContribution(
            rule=f"account.buying_group.{name}", kind="buying_group", points=best.points, detail=detail
        )
    ]


# An account's fit changes only with its firmographics, while its score moves with every member:
# remembered per (rules, firmographics), the rules held so their id is not reused meanwhile.
_FITS: dict[tuple[int, Firmographics], tuple[Sequence[AccountFitRule], tuple[ScoreContribution, ...]]] = {}
_FITS_KEPT = 10_000


def _fit(rules: Sequence[AccountFitRule], firm: Firmographics) -> tuple[ScoreContribution, ...]:
    key = (id(rules), firm)
    found = _FITS.get(key)
    if found is not None and found[0] is rules:
        return found[1]
    if len(_FITS) >= _FITS_KEPT:
        _FITS.clear()
    fit = tuple(_fit_of(rules, firm))
    _FITS[key] = (rules, fit)
    return fit


def _fit_of(rules: Sequence[AccountFitRule], firm: Firmographics) -> list[ScoreContribution]:
    decided: set[str] = set()
    found = []
    for rule in rules:
        if rule.group_key in decided:
            continue
        detail = _fit_match(rule, firm)
        if detail is not None:
            decided.add(rule.group_key)
            if rule.points:
                found.append(
                    ScoreContribution(
                        rule=f"account.fit.{rule.id}", kind="fit", points=rule.points, detail=detail
                    )
                )
    return found


def _fit_match(rule: AccountFitRule, firm: Firmographics) -> str | None:
    if rule.size is not None:
        size = employees(firm.size)
        low, high = rule.size.min or 0, rule.size.max
        if size is None or size < low or (high is not None and size > high):
            return None
        return f"{size:,} employees"
    listed = rule.tier or rule.industry or rule.country or ()
    value = getattr(firm, rule.trait)
    if not value or value.casefold() not in {v.casefold() for v in listed}:
        return None
    return f"{rule.trait} '{value}' is listed"


def _grade(bands: GradeBands, fit_points: int) -> Grade:
    minimums: tuple[tuple[Grade, int], ...] = (("A", bands.A), ("B", bands.B), ("C", bands.C))
    return next((grade for grade, minimum in minimums if fit_points >= minimum), "D")
