"""What the predictive model sees of a lead at a moment: named numeric features from its
profile, its engagement (counts and recency per event type, per engagement rule and per
website section), its channel and its account (tier, score, grade, engaged people, how it
was matched), plus the rule model's own verdict (score, fit rules met).

Pure: a lead's traits and events in, a sparse `{name: value}` out. Features name things
(`industry=software`, `count:page_view`, `section:pricing`), never a person: no email,
name or title text ends up in a feature or in a model artifact. Absent features read as
0, except recency and size, which read as missing (NaN) so the model can tell "never".
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

from services.scoring.domain import LeadEvent, first_engagement_rule
from services.scoring.model import ScoringModel, canonical_channel
from shared.traits import employees

RECENT_DAYS = 30
CATEGORICAL_TRAITS = ("industry", "country", "department")
MISSING_MEANS_UNKNOWN = (
    "days_since:",
    "rule_days_since:",
    "company_size_log",
    "account_score",
    "account_engaged_people",
)
_SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class AccountFacts:
    """What scoring stores of the lead's account (accounts, account_members): no names."""

    tier: str | None
    score: int
    grade: str
    engaged_people: int
    matched_by: str | None


class RuleVerdict(Protocol):
    """What the features take of the rule model's verdict: a LeadScore from live scoring, or
    the backtest engine's MomentScore (incremental_scorer) when history is replayed."""

    @property
    def score(self) -> int: ...

    @property
    def fit_points(self) -> int: ...

    @property
    def fit_rules(self) -> tuple[str, ...]: ...


def default_of(name: str) -> float:
    """What a feature a lead does not have reads as: unknown (NaN) for recency and size, else 0."""
    return math.nan if name.startswith(MISSING_MEANS_UNKNOWN) else 0.0


def lead_features(
    model: ScoringModel,
    *,
    traits: Mapping[str, Any],
    events: Sequence[LeadEvent],
    at: datetime,
    rule_score: RuleVerdict,
    account: AccountFacts | None = None,
) -> dict[str, float]:
    """The lead's features as of `at`, from its events up to `at` (later ones are ignored).

    `account` is the lead's account as scoring stores it now (accounts keep no history, so
    training sees a decided lead's account as it is at training time); a lead with none
    has no account feature (score and engaged people read as unknown)."""
    seen = [e for e in events if e.occurred_at <= at]
    features = put_verdict(rule_score, events=len(seen))
    put_profile(features, traits, first_channel(seen))
    _engagement(features, model, seen, at)
    if account is not None:
        put_account(features, account)
    return features


def put_verdict(rule_score: RuleVerdict, *, events: int) -> dict[str, float]:
    """The features of the rule model's verdict and the number of events: a new feature dict."""
    features: dict[str, float] = {
        "rule_score": float(rule_score.score),
        "fit_points": float(rule_score.fit_points),
        "events": float(events),
    }
    for rule in rule_score.fit_rules:
        features[named("fit:", rule)] = 1.0
    return features


def put_account(features: dict[str, float], account: AccountFacts) -> None:
    features["account_score"] = float(account.score)
    features["account_engaged_people"] = float(account.engaged_people)
    features[named("account_grade=", account.grade)] = 1.0
    if account.tier and account.tier.strip():
        features[named("account_tier=", account.tier.strip().lower()[:40])] = 1.0
    if account.matched_by:
        features[named("account_matched_by=", account.matched_by[:40])] = 1.0


def put_profile(features: dict[str, float], traits: Mapping[str, Any], event_channel: str | None) -> None:
    """Size, categorical traits and channel: its trait, else `event_channel` (`first_channel`)."""
    size = employees(traits.get("company_size"))
    if size is not None:
        features["company_size_log"] = math.log1p(max(0, size))
    for name in CATEGORICAL_TRAITS:
        value = traits.get(name)
        if isinstance(value, str) and value.strip():
            features[sys.intern(f"{name}={value.strip().lower()[:40]}")] = 1.0
    raw = traits.get("channel")
    if not (isinstance(raw, str) and raw.strip()):
        raw = event_channel
    if raw and (channel := canonical_channel(raw)[:40]):
        features[sys.intern(f"channel={channel}")] = 1.0


def first_channel(events: Sequence[LeadEvent]) -> str | None:
    """The raw channel of the earliest event naming one (channel or utm_medium), the least
    value among events at that same moment (the store returns ties in no set order)."""
    named_ = [(e.occurred_at, raw) for e in events if (raw := event_channel(e)) is not None]
    return min(named_)[1] if named_ else None


def event_channel(event: LeadEvent) -> str | None:
    """The channel an event names: its `channel`, else its `utm_medium`, when non-blank text."""
    raw = event.properties.get("channel") or event.properties.get("utm_medium")
    return raw if isinstance(raw, str) and raw.strip() else None


def _engagement(
    features: dict[str, float], model: ScoringModel, events: Sequence[LeadEvent], at: datetime
) -> None:
    last_of: dict[str, datetime] = {}
    days: set[object] = set()
    recent_from = at - timedelta(days=RECENT_DAYS)
    for event in events:
        days.add(event.occurred_at.date())
        keys = [event.event_type]
        if rule_id := _first_rule(model, event):
            keys.append(rule_id)
        if event.event_type == "page_view" and (section := page_section(event.properties.get("url"))):
            name = named("section:", section)
            features[name] = features.get(name, 0.0) + 1.0
        recent = event.occurred_at >= recent_from
        for key in keys:
            count, lately = named("count:", key), named("recent:", key)
            features[count] = features.get(count, 0.0) + 1.0
            if recent:
                features[lately] = features.get(lately, 0.0) + 1.0
            if key not in last_of or event.occurred_at > last_of[key]:
                last_of[key] = event.occurred_at
    for key, last in last_of.items():
        prefix = "rule_days_since:" if key.startswith("rule:") else "days_since:"
        features[named(prefix, key.removeprefix("rule:"))] = max(
            0.0, (at - last).total_seconds() / _SECONDS_PER_DAY
        )
    features["active_days"] = float(len(days))


def _first_rule(model: ScoringModel, event: LeadEvent) -> str | None:
    i = first_engagement_rule(model.engagement, event)
    return named("rule:", model.engagement[i].id) if i is not None else None


@functools.lru_cache(maxsize=8192)
def named(prefix: str, key: str) -> str:
    """A feature's name, built and interned once: the same few hundred names on every example."""
    return sys.intern(prefix + key)


def page_section(url: object) -> str | None:
    """A page's section: the first segment of its path (`/integrations/crm` → `integrations`)."""
    if not isinstance(url, str):
        return None
    try:
        path = urlsplit(url).path
    except ValueError:
        return None
    segment = path.strip("/").split("/", 1)[0].lower()
    return segment[:40] if segment else "home"
