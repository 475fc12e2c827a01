"""The scoring model: its schema and the rules a valid model keeps.

Marketing ops edits the model by hand, so a bad file must refuse to load with a message a
person can act on: the schema is strict (unknown keys are errors, "5" is not an integer), and
`rule_problems` names what the schema cannot express. Pure: `config_files.load_model` reads
the file, through `shared.yaml_config`, which maps every problem back to its YAML line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    model_validator,
)

from shared.config_errors import ConfigError, Loc

Grade = Literal["A", "B", "C", "D"]
GRADES: tuple[Grade, ...] = ("A", "B", "C", "D")  # best first

# The types of config/tracking-plan.yaml. A rule on any other type could never score, so a
# typo like "page_veiw" is refused at load time instead of silently scoring nothing.
EVENT_TYPES = frozenset(
    {
        "identify",
        "page_view",
        "form_submit",
        "content_download",
        "email_open",
        "email_click",
        "webinar_registered",
        "webinar_attended",
        "event_visit",
        "demo_request",
        "contact_sales",
        "trial_signup",
        "unsubscribe",
    }
)


class ModelError(ConfigError):
    """A model file that cannot load; str() gives one "FILE line N: path: rule" per problem."""


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern, re.IGNORECASE)
    except re.error as e:
        raise ValueError(f"not a valid regex ({e})") from None
    return pattern


def _scalar_text(value: Any) -> Any:
    # YAML reads `equals: 42` or `equals: true` as numbers/booleans; matching is on text.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _rule_id(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_]+)*", value):
        raise ValueError("use lower-case letters, digits, '_' and '.' (e.g. title.vp)")
    return value


def _event_type(value: str) -> str:
    if value not in EVENT_TYPES:
        raise ValueError(f"unknown event type {value!r} (known: {', '.join(sorted(EVENT_TYPES))})")
    return value


def _country(value: Any) -> Any:
    if isinstance(value, bool):  # the "Norway problem": YAML 1.1 reads NO (and ON, Y) as booleans
        raise ValueError("YAML reads this as true/false; quote country codes, e.g. 'NO'")
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z]{2}", value):
        raise ValueError("must be a 2-letter ISO country code, e.g. US")
    return value.upper()


def _channel_name(value: Any) -> Any:
    return canonical_channel(value) if isinstance(value, str) else value


def canonical_channel(value: str) -> str:
    """'Purchased List' and 'purchased-list' are the same channel as 'purchased_list'."""
    return re.sub(r"[\s\-]+", "_", value.strip().lower())


Pattern = Annotated[str, AfterValidator(_compiles)]
Text = Annotated[str, BeforeValidator(_scalar_text)]
RuleId = Annotated[str, AfterValidator(_rule_id)]
EventType = Annotated[str, AfterValidator(_event_type)]
ChannelName = Annotated[str, BeforeValidator(_channel_name)]
Country = Annotated[str, BeforeValidator(_country)]
Domain = Annotated[str, AfterValidator(str.lower)]
Count = Annotated[StrictInt, Field(ge=0)]
HalfLife = Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)]


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _exactly_one(**options: Any) -> None:
    if sum(value is not None for value in options.values()) != 1:
        raise ValueError(f"give exactly one of: {', '.join(options)}")


class Matcher(_Schema):
    """How one event property must look. Text comparisons ignore case."""

    equals: Text | None = None
    contains: Text | None = None
    regex: Pattern | None = None
    in_: tuple[Text, ...] | None = Field(default=None, alias="in")

    @model_validator(mode="after")
    def _one_test(self) -> Matcher:
        tests = {"equals": self.equals, "contains": self.contains, "regex": self.regex}
        _exactly_one(**tests, **{"in": self.in_})
        return self


class SizeBand(_Schema):
    min: Count | None = None
    max: Count | None = None

    @model_validator(mode="after")
    def _ordered(self) -> SizeBand:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min must not exceed max")
        return self


FIT_TRAITS = ("title", "department", "company_size", "industry", "country", "company_domain")


class FitRule(_Schema):
    """Points for one profile trait. Rules of the same group are tiers: the first match wins."""

    id: RuleId
    points: StrictInt
    group: str | None = None
    title: Pattern | None = None
    department: tuple[str, ...] | None = None
    company_size: SizeBand | None = None
    industry: tuple[str, ...] | None = None
    country: tuple[Country, ...] | None = None
    # A list of accounts (target accounts, ideal customers); subdomains count.
    company_domain: tuple[Domain, ...] | None = None

    @model_validator(mode="after")
    def _one_trait(self) -> FitRule:
        _exactly_one(**{trait: getattr(self, trait) for trait in FIT_TRAITS})
        return self

    @property
    def trait(self) -> str:
        # Spelled out, not a loop over FIT_TRAITS: fit is tested for every lead scored.
        if self.title is not None:
            return "title"
        if self.department is not None:
            return "department"
        if self.company_size is not None:
            return "company_size"
        if self.company_domain is not None:
            return "company_domain"
        return "industry" if self.industry is not None else "country"

    @property
    def group_key(self) -> str:
        return self.group or self.trait


class GradeBands(_Schema):
    """Minimum fit points per grade; below C is D."""

    A: StrictInt
    B: StrictInt
    C: StrictInt


class ChannelRules(_Schema):
    points: dict[ChannelName, StrictInt] = {}
    # utm_medium values ("cpc", "paid_social") are not channel names; map them here.
    aliases: dict[ChannelName, ChannelName] = {}


class EngagementRule(_Schema):
    id: RuleId
    event: EventType
    where: dict[str, Matcher] = {}
    points: StrictInt
    cap: Annotated[StrictInt, Field(gt=0)] | None = None
    # At most this many points per UTC calendar day of the events (after decay), so a
    # binge of fifty page views in one sitting counts like a few.
    cap_per_day: Annotated[StrictInt, Field(gt=0)] | None = None
    # This rule's points halve every this many days, instead of the model's `decay`: a demo
    # request stays meaningful for months, a page view for weeks.
    half_life_days: HalfLife | None = None

    def half_life(self, decay: Decay | None) -> float | None:
        """The rule's half-life in days: its own, else the model's; None: it does not decay."""
        if self.half_life_days is not None:
            return self.half_life_days
        return decay.half_life_days if decay is not None else None


class Decay(_Schema):
    half_life_days: HalfLife


class UndesirableRule(_Schema):
    """Negative points, or a disqualifier, on a title, a domain or a tracked event."""

    id: RuleId
    title: Pattern | None = None
    domain: tuple[Domain, ...] | None = None
    event: EventType | None = None
    where: dict[str, Matcher] = {}
    points: Annotated[StrictInt, Field(lt=0)] | None = None
    disqualify: StrictBool = False

    @model_validator(mode="after")
    def _one_condition_one_outcome(self) -> UndesirableRule:
        _exactly_one(title=self.title, domain=self.domain, event=self.event)
        if self.where and self.event is None:
            raise ValueError("'where' only narrows an 'event' rule")
        if (self.points is None) == (not self.disqualify):
            raise ValueError("give either negative points or disqualify: true")
        return self


class MqlRule(_Schema):
    min_score: StrictInt
    min_grade: Grade
    # A returned or rejected lead cannot become an MQL again until this many days after it
    # was recycled, however much it does meanwhile.
    cooloff_days: Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)] = 0

    def is_met(self, *, score: int, grade: Grade, disqualified: str | None) -> bool:
        """Score high enough, grade at least the minimum, and not disqualified.

        The one statement of the rule: the live path and the backtest's timeline both ask it.
        """
        good_enough = GRADES.index(grade) <= GRADES.index(self.min_grade)
        return disqualified is None and score >= self.min_score and good_enough


# --- accounts ------------------------------------------------------------------------------

TieBreaker = Literal["tier", "most_engaged", "oldest"]


class AccountMatching(_Schema):
    """How a lead is matched to an account (services/scoring/accounts/matching.py)."""

    # rapidfuzz's token_sort_ratio (0-100) on names with legal suffixes removed; a close name
    # also needs a supporting criterion (a sibling domain or the same country).
    name_threshold: Annotated[float, Field(strict=True, ge=50, le=100)] = 90
    tie_breakers: tuple[TieBreaker, ...] = ("tier", "most_engaged", "oldest")
    # A lead with a corporate email domain that matches no account starts one.
    auto_create: StrictBool = True


class AccountFitRule(_Schema):
    """Points for one firmographic of the account. Like lead fit: the first match of a group wins."""

    id: RuleId
    points: StrictInt
    group: str | None = None
    tier: tuple[str, ...] | None = None
    industry: tuple[str, ...] | None = None
    size: SizeBand | None = None
    country: tuple[Country, ...] | None = None

    @model_validator(mode="after")
    def _one_firmographic(self) -> AccountFitRule:
        _exactly_one(tier=self.tier, industry=self.industry, size=self.size, country=self.country)
        return self

    @property
    def trait(self) -> str:
        if self.tier is not None:
            return "tier"
        if self.industry is not None:
            return "industry"
        return "size" if self.size is not None else "country"

    @property
    def group_key(self) -> str:
        return self.group or self.trait


class CoverageStep(_Schema):
    """Points once the account has at least `min` of something (people, departments, seniorities)."""

    min: Annotated[StrictInt, Field(ge=1)]
    points: StrictInt


class BuyingGroup(_Schema):
    # A member counts as engaged once its (decayed, capped) engagement reaches this.
    engaged_min_points: Annotated[float, Field(strict=True, ge=0)] = 5
    # Highest step reached counts, per list; list them in any order.
    people: tuple[CoverageStep, ...] = ()
    departments: tuple[CoverageStep, ...] = ()
    seniorities: tuple[CoverageStep, ...] = ()


class AccountEngagement(_Schema):
    # One person's engagement counts at most this much toward the account.
    per_lead_cap: Annotated[float, Field(strict=True, gt=0)]
    # The roll-up keeps decaying at this half-life (default: the model's `decay`).
    half_life_days: Annotated[float, Field(strict=True, gt=0)] | None = None


class MqaRule(_Schema):
    min_score: StrictInt
    min_grade: Grade
    min_engaged_people: Annotated[StrictInt, Field(ge=0)] = 1

    def is_met(self, *, score: int, grade: str, engaged_people: int) -> bool:
        good_enough = grade in GRADES and GRADES.index(grade) <= GRADES.index(self.min_grade)
        return score >= self.min_score and good_enough and engaged_people >= self.min_engaged_people


class LeadAtMqa(_Schema):
    """The lead MQL rule at an MQA account: a lower personal threshold (the grade rule stays;
    a value above `mql.min_score` changes nothing)."""

    min_score: StrictInt


class AccountModel(_Schema):
    matching: AccountMatching = AccountMatching()
    tiers: tuple[str, ...] = ()  # best first: the `tier` tie-breaker's order
    grades: GradeBands
    fit: tuple[AccountFitRule, ...] = ()
    engagement: AccountEngagement
    buying_group: BuyingGroup = BuyingGroup()
    mqa: MqaRule
    lead_mql_at_mqa: LeadAtMqa | None = None
    # `account.scored` goes out when the grade, MQA or engaged people change, or the score
    # enters another band of this many points (1: on every change of the score).
    announce_score_band: Annotated[StrictInt, Field(ge=1)] = 5


class ScoringModel(_Schema):
    version: Annotated[str, Field(strict=True)]
    grades: GradeBands
    fit: tuple[FitRule, ...] = ()
    channel: ChannelRules = ChannelRules()
    engagement: tuple[EngagementRule, ...] = ()
    decay: Decay | None = None
    undesirables: tuple[UndesirableRule, ...] = ()
    mql: MqlRule
    account: AccountModel | None = None  # no section: no account matching or roll-up


# --- rules pydantic cannot express --------------------------------------------------------


def rule_problems(model: ScoringModel) -> Iterator[tuple[Loc, str]]:
    """What is wrong with a model the schema accepts: where, and why."""
    yield from _grade_order(model.grades)
    for section in ("fit", "engagement", "undesirables"):
        yield from _duplicate_ids(section, getattr(model, section))
    yield from _unreachable_engagement(model.engagement)
    yield from _daily_caps_above_caps(model.engagement)
    if model.account is not None:
        yield from _account_problems(model.account)
    for alias, target in model.channel.aliases.items():
        if target not in model.channel.points:
            yield ("channel", "aliases", alias), f"{target!r} is not a channel under channel.points"


def _grade_order(grades: GradeBands) -> Iterator[tuple[Loc, str]]:
    if not grades.A > grades.B:
        yield ("grades", "B"), f"must be below A ({grades.A})"
    if not grades.B > grades.C:
        yield ("grades", "C"), f"must be below B ({grades.B})"


def _duplicate_ids(section: str, rules: Sequence[Any]) -> Iterator[tuple[Loc, str]]:
    first: dict[str, int] = {}
    for i, rule in enumerate(rules):
        if rule.id in first:
            also = f"{section}[{first[rule.id]}]"
            yield (section, i, "id"), f"duplicate rule id {rule.id!r} (also {also})"
        first.setdefault(rule.id, i)


def _unreachable_engagement(rules: Sequence[EngagementRule]) -> Iterator[tuple[Loc, str]]:
    # An event scores under the first rule that matches it, so a rule without `where`
    # swallows every later rule for the same event type.
    catch_all: dict[str, int] = {}
    for i, rule in enumerate(rules):
        if rule.event in catch_all:
            j = catch_all[rule.event]
            yield (
                ("engagement", i),
                (
                    f"never scores: engagement[{j}] ({rule.event}, no 'where') takes every "
                    f"{rule.event} first; put narrower rules before it"
                ),
            )
        elif not rule.where:
            catch_all[rule.event] = i


def _daily_caps_above_caps(rules: Sequence[EngagementRule]) -> Iterator[tuple[Loc, str]]:
    for i, rule in enumerate(rules):
        if rule.cap is not None and rule.cap_per_day is not None and rule.cap_per_day > rule.cap:
            yield (
                ("engagement", i, "cap_per_day"),
                f"{rule.cap_per_day} is above the rule's cap ({rule.cap}), so it never limits "
                "anything; lower it or remove it",
            )


def _account_problems(account: AccountModel) -> Iterator[tuple[Loc, str]]:
    for loc, problem in _grade_order(account.grades):
        yield ("account", *loc), problem
    yield from (((("account", *loc)), p) for loc, p in _duplicate_ids("fit", account.fit))
    unknown = [t for rule in account.fit for t in (rule.tier or ()) if t not in account.tiers]
    if account.tiers and unknown:
        yield ("account", "fit"), f"tier(s) {', '.join(sorted(set(unknown)))} not listed under account.tiers"
