"""The score calculator: a lead's traits and events, under a scoring model, give a LeadScore.

Pure and synchronous. The result depends only on (model, email, traits, events, at) and not on
the order of `events`: every per-rule sum uses math.fsum, which is exact, and ties between
events are broken on their values, never on their position.
"""

from __future__ import annotations

import functools
import math
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from services.scoring.model import (
    Decay,
    EngagementRule,
    FitRule,
    Grade,
    GradeBands,
    Matcher,
    ModelError,
    MqlRule,
    ScoringModel,
    UndesirableRule,
    canonical_channel,
)
from shared.traits import employees

__all__ = [
    "Contribution",
    "LeadEvent",
    "LeadScore",
    "ModelError",
    "MqlRule",
    "ScoringModel",
    "email_domain",
    "engagement_detail",
    "engagement_points",
    "may_requalify",
    "meets_mql_rule",
    "score_lead",
    "utc_day",
]

Kind = Literal["fit", "channel", "engagement", "undesirable"]


@dataclass(frozen=True)
class LeadEvent:
    """One tracked event of the lead, as scoring stores it."""

    event_type: str
    occurred_at: datetime  # tz-aware UTC
    properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Contribution:
    rule: str  # "fit.title.vp", "engagement.pricing_page"
    kind: Kind
    points: float  # after caps and decay, rounded to 2 decimals
    detail: str


@dataclass(frozen=True)
class LeadScore:
    score: int  # engagement + channel + undesirable points
    fit_points: int
    grade: Grade
    contributions: tuple[Contribution, ...]  # biggest |points| first
    disqualified: str | None
    model_version: str

    @property
    def fit_rules(self) -> tuple[str, ...]:
        """The fit rules that gave points, biggest first (the order of `contributions`)."""
        return tuple(c.rule for c in self.contributions if c.kind == "fit")


def score_lead(
    model: ScoringModel,
    *,
    email: str | None,
    traits: Mapping[str, Any],
    events: Sequence[LeadEvent],
    at: datetime,
) -> LeadScore:
    """Score a lead at time `at` (tz-aware); events dated after `at` count undecayed."""
    if at.tzinfo is None:
        raise ValueError("`at` must be timezone-aware")
    fit = list(_fit(model.fit, traits))
    behaviour = [
        *_channel(model, traits, events),
        *_engagement(model.engagement, model.decay, events, at),
        *_penalties(model.undesirables, email, traits, events),
    ]
    fit_points = sum(int(c.points) for c in fit)
    return LeadScore(
        score=_round_half_up(math.fsum(c.points for c in behaviour)),
        fit_points=fit_points,
        grade=_grade(model.grades, fit_points),
        contributions=tuple(sorted(fit + behaviour, key=lambda c: (-abs(c.points), c.rule))),
        disqualified=_disqualification(model.undesirables, email, traits, events),
        model_version=model.version,
    )


def meets_mql_rule(model: ScoringModel, score: LeadScore) -> bool:
    """Score high enough, grade at least the minimum, and not disqualified."""
    return model.mql.is_met(score=score.score, grade=score.grade, disqualified=score.disqualified)


def may_requalify(model: ScoringModel, *, recycled_at: datetime | None, at: datetime) -> bool:
    """Whether a lead recycled at `recycled_at` (None: never) may become an MQL again at `at`.

    After a return or rejection the lead must sit out the model's cool-off; without one it
    may qualify again at once, even on events stamped before the recycle.
    """
    cooloff_days = model.mql.cooloff_days
    if recycled_at is None or cooloff_days == 0:
        return True
    return (at - recycled_at).total_seconds() >= cooloff_days * 86_400


def email_domain(email: str | None) -> str | None:
    """The lower-cased part after the last '@', or None when there is none."""
    if not email or "@" not in email:
        return None
    return email.rpartition("@")[2].strip().rstrip(".").lower() or None


# --- fit ------------------------------------------------------------------------------------


def _fit(rules: Sequence[FitRule], traits: Mapping[str, Any]) -> Iterator[Contribution]:
    for rule, detail in _matching_tiers(rules, [rule.group_key for rule in rules], traits):
        if rule.points:
            yield Contribution(f"fit.{rule.id}", "fit", float(rule.points), detail)


def _matching_tiers(
    rules: Sequence[FitRule], groups: Sequence[str], traits: Mapping[str, Any]
) -> Iterator[tuple[FitRule, str]]:
    """The first rule of each group (`groups[i]` is rules[i].group_key) that matches, and why."""
    decided: set[str] = set()  # groups whose tier is already chosen
    for rule, group in zip(rules, groups, strict=True):
        if group in decided:
            continue
        detail = _fit_match(rule, traits)
        if detail is not None:
            decided.add(group)
            yield rule, detail


def _fit_match(rule: FitRule, traits: Mapping[str, Any]) -> str | None:
    """Why the rule matches the traits, or None."""
    if rule.title is not None:
        return _title_match(rule.title, traits)
    if rule.company_size is not None:
        size, band = employees(traits.get("company_size")), rule.company_size
        low, high = band.min or 0, band.max
        if size is None or size < low or (high is not None and size > high):
            return None
        return f"company size {size:,} in {low:,}{f'-{high:,}' if high is not None else '+'}"
    if rule.company_domain is not None:
        return _listed_domain(rule.company_domain, None, traits)
    listed = rule.department or rule.industry or rule.country or ()
    value = _text(traits.get(rule.trait))
    if value is None or value.casefold() not in _folded(tuple(listed)):
        return None
    return f"{rule.trait} '{value}' is listed"


def _title_match(pattern: str, traits: Mapping[str, Any]) -> str | None:
    title = _text(traits.get("title"))
    found = _regex(pattern).search(title) if title else None
    return f"title matches '{found.group(0)}'" if found else None


def _grade(bands: GradeBands, fit_points: int) -> Grade:
    minimums: tuple[tuple[Grade, int], ...] = (("A", bands.A), ("B", bands.B), ("C", bands.C))
    return next((grade for grade, minimum in minimums if fit_points >= minimum), "D")


# --- channel --------------------------------------------------------------------------------


def _channel(
    model: ScoringModel, traits: Mapping[str, Any], events: Sequence[LeadEvent]
) -> Iterator[Contribution]:
    found = _acquisition_channel(traits, events)
    if found is None:
        return
    raw, source = found
    name = canonical_channel(raw)
    name = model.channel.aliases.get(name, name)
    points = model.channel.points.get(name, 0)
    if points:
        yield Contribution(f"channel.{name}", "channel", float(points), f"{name} (from {source})")


def _acquisition_channel(traits: Mapping[str, Any], events: Sequence[LeadEvent]) -> tuple[str, str] | None:
    """The raw channel and where it came from: traits first, else the earliest event."""
    if channel := _text(traits.get("channel")):
        return channel, "traits.channel"
    candidates = []
    for event in events:
        for key in ("channel", "utm_medium"):
            if value := _text(event.properties.get(key)):
                candidates.append((event.occurred_at, value, key))
                break
    if not candidates:
        return None
    _, value, key = min(candidates)  # equal times: the smaller value, so order never matters
    return value, f"{key} '{value}' of the first event"


# --- engagement -----------------------------------------------------------------------------


def _engagement(
    rules: Sequence[EngagementRule],
    decay: Decay | None,
    events: Sequence[LeadEvent],
    at: datetime,
) -> Iterator[Contribution]:
    matched: dict[int, list[datetime]] = defaultdict(list)
    for event in events:
        if (i := first_engagement_rule(rules, event)) is not None:
            matched[i].append(event.occurred_at)
    for i, times in sorted(matched.items()):
        rule = rules[i]
        half_life = rule.half_life(decay)
        earned = [rule.points * _decay_factor(half_life, t, at) for t in times]
        total = round(_capped_total(rule, times, earned), 2)
        if total:
            yield Contribution(
                f"engagement.{rule.id}", "engagement", total, _engagement_detail(rule, times, earned)
            )


def engagement_points(
    rule: EngagementRule, decay: Decay | None, times: Sequence[datetime], at: datetime
) -> float:
    """What one rule earns at `at` from its events at `times`: decayed, capped per day, capped.

    Not rounded; score_lead shows round(points, 2).
    """
    half_life = rule.half_life(decay)
    return _capped_total(rule, times, [rule.points * _decay_factor(half_life, t, at) for t in times])


def _capped_total(rule: EngagementRule, times: Sequence[datetime], earned: Sequence[float]) -> float:
    if rule.cap_per_day is None:
        total = math.fsum(earned)
    else:
        by_day: dict[date, list[float]] = defaultdict(list)
        for occurred_at, points in zip(times, earned, strict=True):
            by_day[utc_day(occurred_at)].append(points)
        total = math.fsum(_bounded(math.fsum(day), rule.cap_per_day) for day in by_day.values())
    return total if rule.cap is None else _bounded(total, rule.cap)


def _bounded(points: float, limit: int) -> float:
    # A cap bounds the size of the points, for penalties too.
    return math.copysign(min(abs(points), limit), points)


def _engagement_detail(rule: EngagementRule, times: Sequence[datetime], earned: Sequence[float]) -> str:
    decayed = abs(math.fsum(earned)) < abs(rule.points * len(earned))
    return engagement_detail(rule, count=len(times), days=len({utc_day(t) for t in times}), decayed=decayed)


def engagement_detail(rule: EngagementRule, *, count: int, days: int, decayed: bool) -> str:
    """Why a rule earned its points: "3 x page_view on 2 days, decayed (cap 4 a day, 10 in all)"."""
    detail = f"{count} \N{MULTIPLICATION SIGN} {_describe_event(rule.event, rule.where)}"
    if rule.cap_per_day is not None:
        detail += f" on {days} day{'s' if days != 1 else ''}"
    detail += ", decayed" if decayed else ""
    caps = [f"{rule.cap_per_day} a day"] if rule.cap_per_day is not None else []
    if rule.cap is not None:
        caps.append(f"{rule.cap} in all" if caps else str(rule.cap))
    return detail + (f" (cap {', '.join(caps)})" if caps else "")


def utc_day(moment: datetime) -> date:
    """The UTC calendar day of a moment; per-day caps count by it."""
    return moment.astimezone(UTC).date() if moment.tzinfo is not None else moment.date()


def first_engagement_rule(rules: Sequence[EngagementRule], event: LeadEvent) -> int | None:
    """The index of the first rule the event matches (an event earns by one rule only)."""
    for i, rule in _rules_by_event(rules).get(event.event_type, ()):
        if _where_matches(rule.where, event):
            return i
    return None


_RULE_INDEXES: dict[int, tuple[Sequence[EngagementRule], dict[str, list[tuple[int, EngagementRule]]]]] = {}


def _rules_by_event(rules: Sequence[EngagementRule]) -> dict[str, list[tuple[int, EngagementRule]]]:
    # A rule can only match its own event type; indexing by it skips the others' matchers.
    # Keyed by identity (a model's rules are one tuple for its life), checked, and bounded.
    entry = _RULE_INDEXES.get(id(rules))
    if entry is not None and entry[0] is rules:
        return entry[1]
    index: dict[str, list[tuple[int, EngagementRule]]] = defaultdict(list)
    for i, rule in enumerate(rules):
        index[rule.event].append((i, rule))
    if len(_RULE_INDEXES) >= 64:
        _RULE_INDEXES.clear()
    _RULE_INDEXES[id(rules)] = (rules, dict(index))
    return _RULE_INDEXES[id(rules)][1]


def _decay_factor(half_life_days: float | None, occurred_at: datetime, at: datetime) -> float:
    if half_life_days is None:
        return 1.0
    # An event stamped a little after `at` (clock skew) counts in full rather than vanishing.
    age_days = max(0.0, (at - occurred_at).total_seconds() / 86_400)
    return float(0.5 ** (age_days / half_life_days))


def _where_matches(where: Mapping[str, Matcher], event: LeadEvent) -> bool:
    return all(_matches(m, event.properties.get(prop)) for prop, m in where.items())


def _matches(matcher: Matcher, value: Any) -> bool:
    text = _text(value)
    if text is None:
        return False
    if matcher.equals is not None:
        return text.casefold() == matcher.equals.casefold()
    if matcher.contains is not None:
        return matcher.contains.casefold() in text.casefold()
    if matcher.regex is not None:
        return _regex(matcher.regex).search(text) is not None
    return text.casefold() in _folded(matcher.in_ or ())


def _describe_event(event_type: str, where: Mapping[str, Matcher]) -> str:
    tests = [event_type]
    for prop, m in where.items():
        if m.equals is not None:
            tests.append(f"{prop} equals {m.equals}")
        elif m.contains is not None:
            tests.append(f"{prop} contains {m.contains}")
        elif m.regex is not None:
            tests.append(f"{prop} matches {m.regex}")
        else:
            tests.append(f"{prop} in [{', '.join(m.in_ or ())}]")
    return " ".join(tests)


# --- undesirables ---------------------------------------------------------------------------


def _penalties(
    rules: Sequence[UndesirableRule],
    email: str | None,
    traits: Mapping[str, Any],
    events: Sequence[LeadEvent],
) -> Iterator[Contribution]:
    for rule in rules:
        if rule.points is not None and (detail := _undesirable_match(rule, email, traits, events)):
            yield Contribution(f"undesirable.{rule.id}", "undesirable", float(rule.points), detail)


def _disqualification(
    rules: Sequence[UndesirableRule],
    email: str | None,
    traits: Mapping[str, Any],
    events: Sequence[LeadEvent],
) -> str | None:
    """Withdrawn marketing consent, else the first disqualifier in model order that applies, as
    "rule id: reason"."""
    if consent_withdrawn(traits):
        return f"{CONSENT_TRAIT}: false: the person withdrew marketing consent"
    for rule in rules:
        if rule.disqualify and (detail := _undesirable_match(rule, email, traits, events)):
            return f"undesirable.{rule.id}: {detail}"
    return None


CONSENT_TRAIT = "consent.marketing"


def consent_withdrawn(traits: Mapping[str, Any]) -> bool:
    """`consent.marketing: false` (or "false"): never handed to sales, whatever the model says."""
    value = traits.get(CONSENT_TRAIT)
    return value is False or (isinstance(value, str) and value.strip().lower() == "false")


def _undesirable_match(
    rule: UndesirableRule,
    email: str | None,
    traits: Mapping[str, Any],
    events: Sequence[LeadEvent],
) -> str | None:
    if rule.title is not None:
        return _title_match(rule.title, traits)
    if rule.domain is not None:
        return _listed_domain(rule.domain, email, traits)
    if any(e.event_type == rule.event and _where_matches(rule.where, e) for e in events):
        return f"{_describe_event(str(rule.event), rule.where)} tracked"
    return None


def _listed_domain(listed: Sequence[str], email: str | None, traits: Mapping[str, Any]) -> str | None:
    company = _text(traits.get("company_domain"))
    candidates = (("email", email_domain(email)), ("company", company and company.lower()))
    for source, domain in candidates:
        if domain and _covers(listed, domain):
            return f"{source} domain {domain} is listed"
    return None


def _covers(listed: Sequence[str], domain: str) -> bool:
    """Whether the domain is listed, or is under one that is: eu.rival.com is rival.com."""
    names, labels = _as_set(tuple(listed)), domain.split(".")
    return any(".".join(labels[i:]) in names for i in range(len(labels)))


# --- values ---------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    """A trait or property as stripped text; None when absent, empty or not a scalar."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value).strip() or None
    return None


# Rules are tested for every lead and event; compile and fold their texts once.
@functools.lru_cache(maxsize=4096)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


@functools.lru_cache(maxsize=4096)
def _as_set(values: tuple[str, ...]) -> frozenset[str]:
    return frozenset(values)


@functools.lru_cache(maxsize=4096)
def _folded(values: tuple[str, ...]) -> frozenset[str]:
    return frozenset(v.casefold() for v in values)


def _round_half_up(value: float) -> int:
    # round() rounds halves to even; a score of 49.5 reads as 50 to a person. The points are
    # cents, but their float sum is not exact (39.73 - 20.0 + 9.77 is 29.499999999999996), so it
    # is brought back to cents first: otherwise the same cents summed in another order (the
    # decay moments' bounds) round the other way.
    return math.floor(round(value, 2) + 0.5)
