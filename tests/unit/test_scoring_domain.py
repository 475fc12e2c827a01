"""The score calculator, rule kind by rule kind, then the default model's personas."""

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scoring.config_files import load_model, parse_model
from services.scoring.domain import (
    LeadEvent,
    LeadScore,
    ScoringModel,
    email_domain,
    may_requalify,
    meets_mql_rule,
    score_lead,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DEFAULT_MODEL = Path(__file__).parents[2] / "config" / "scoring-model.yaml"
TIMES = "\N{MULTIPLICATION SIGN}"  # as in "3 × page_view", spelled out for ruff

BASE = """\
version: test-1
grades: {A: 60, B: 40, C: 20}
mql: {min_score: 50, min_grade: B}
"""


def model(sections: str = "") -> ScoringModel:
    return parse_model(BASE + dedent(sections), source="test.yaml")


def event(event_type: str, days_ago: float = 0, **properties: Any) -> LeadEvent:
    return LeadEvent(event_type, NOW - timedelta(days=days_ago), properties)


def score(
    scoring_model: ScoringModel,
    *,
    email: str | None = "ana@acme.com",
    traits: Mapping[str, Any] | None = None,
    events: Sequence[LeadEvent] = (),
) -> LeadScore:
    return score_lead(scoring_model, email=email, traits=traits or {}, events=events, at=NOW)


def points_by_rule(result: LeadScore) -> dict[str, float]:
    return {c.rule: c.points for c in result.contributions}


# --- fit and grades -------------------------------------------------------------------------

FIT = """\
fit:
  - {id: title.vp, title: '\\b(vp|vice president)\\b', points: 25}
  - {id: title.manager, title: '\\bmanager\\b', points: 10}
  - {id: department.marketing, department: [Marketing], points: 10}
  - {id: size.mid, company_size: {min: 200, max: 999}, points: 20}
  - {id: size.large, company_size: {min: 1000}, points: 10}
  - {id: industry.software, industry: [software, saas], points: 15}
  - {id: country.core, country: [US, CA], points: 10}
"""


def test_title_pattern_matches_case_insensitively():
    result = score(model(FIT), traits={"title": "Vice President, Growth"})
    assert result.fit_points == 25
    assert result.contributions[0].rule == "fit.title.vp"
    assert result.contributions[0].detail == "title matches 'Vice President'"


def test_only_the_first_matching_tier_of_a_trait_counts():
    result = score(model(FIT), traits={"title": "VP, Product Manager"})
    assert points_by_rule(result) == {"fit.title.vp": 25}


def test_rules_sharing_a_group_never_add_up():
    shared = """\
    fit:
      - {id: department.marketing, group: function, department: [marketing], points: 10}
      - {id: title.marketing, group: function, title: marketing, points: 10}
    """
    traits = {"department": "Marketing", "title": "Marketing lead"}
    assert score(model(shared), traits=traits).fit_points == 10


@pytest.mark.parametrize(
    ("employees", "rule"),
    [(200, "fit.size.mid"), (999, "fit.size.mid"), ("500", "fit.size.mid"), (1000, "fit.size.large")],
)
def test_company_size_band_includes_both_ends(employees: object, rule: str):
    assert list(points_by_rule(score(model(FIT), traits={"company_size": employees}))) == [rule]


def test_company_size_outside_every_band_earns_nothing():
    assert score(model(FIT), traits={"company_size": 199}).fit_points == 0


def test_industry_department_and_country_match_listed_values_ignoring_case():
    traits = {"industry": "SaaS", "department": "marketing", "country": "us"}
    assert points_by_rule(score(model(FIT), traits=traits)) == {
        "fit.industry.software": 15,
        "fit.department.marketing": 10,
        "fit.country.core": 10,
    }


@pytest.mark.parametrize(
    ("traits", "fit_points", "grade"),
    [
        ({"title": "VP", "company_size": 500, "industry": "saas", "country": "US"}, 70, "A"),
        ({"title": "VP", "company_size": 500, "industry": "saas"}, 60, "A"),
        ({"title": "VP", "industry": "saas"}, 40, "B"),
        ({"title": "Manager", "industry": "saas"}, 25, "C"),
        ({"title": "Manager", "country": "CA"}, 20, "C"),
        ({"title": "Manager"}, 10, "D"),
        ({}, 0, "D"),
    ],
)
def test_fit_points_give_the_grade_by_bands(traits: dict[str, Any], fit_points: int, grade: str):
    result = score(model(FIT), traits=traits)
    assert (result.fit_points, result.grade) == (fit_points, grade)


def test_grade_bands_are_configurable():
    strict = parse_model(BASE.replace("{A: 60, B: 40, C: 20}", "{A: 90, B: 70, C: 50}") + FIT)
    traits = {"title": "VP", "company_size": 500, "industry": "software", "country": "US"}
    assert score(strict, traits=traits).grade == "B"


def test_fit_points_do_not_count_toward_the_score():
    traits = {"title": "VP", "company_size": 500, "industry": "software", "country": "US"}
    result = score(model(FIT), traits=traits)
    assert (result.fit_points, result.score) == (70, 0)


# --- channel --------------------------------------------------------------------------------

CHANNEL = """\
channel:
  points: {referral: 15, paid: 5, purchased_list: -10}
  aliases: {cpc: paid}
"""


def test_channel_trait_gives_its_points():
    result = score(model(CHANNEL), traits={"channel": "Referral"})
    assert points_by_rule(result) == {"channel.referral": 15}
    assert result.score == 15


def test_purchased_list_channel_costs_points():
    assert score(model(CHANNEL), traits={"channel": "purchased list"}).score == -10


def test_channel_comes_from_the_earliest_event_when_the_trait_is_missing():
    events = [
        event("page_view", days_ago=1, url="/", utm_medium="referral"),
        event("page_view", days_ago=5, url="/", utm_medium="cpc"),  # first touch
    ]
    result = score(model(CHANNEL), events=events)
    assert points_by_rule(result) == {"channel.paid": 5}
    assert "utm_medium 'cpc'" in result.contributions[0].detail


def test_channel_trait_wins_over_events():
    events = [event("page_view", url="/", channel="paid")]
    assert score(model(CHANNEL), traits={"channel": "referral"}, events=events).score == 15


def test_unknown_channel_scores_nothing():
    assert score(model(CHANNEL), traits={"channel": "carrier pigeon"}).contributions == ()


# --- engagement -----------------------------------------------------------------------------

ENGAGEMENT = """\
engagement:
  - {id: pricing_page, event: page_view, where: {url: {contains: /pricing}}, points: 5, cap: 15}
  - {id: page_view, event: page_view, points: 1, cap: 5}
  - {id: demo_request, event: demo_request, points: 30}
  - {id: webinar, event: webinar_attended, where: {webinar_id: {in: [w1, W2]}}, points: 15}
  - {id: case_study, event: content_download, where: {content_id: {regex: '^case-'}}, points: 8}
  - {id: gartner, event: content_download, where: {content_id: {equals: gartner-mq}}, points: 12}
"""


def test_event_of_a_rule_type_earns_its_points():
    assert score(model(ENGAGEMENT), events=[event("demo_request", form_id="demo")]).score == 30


def test_property_match_narrows_a_rule():
    events = [
        event("webinar_attended", webinar_id="w2"),
        event("webinar_attended", webinar_id="w3"),
        event("content_download", content_id="case-acme"),
        event("content_download", content_id="ebook-acme"),
        event("content_download", content_id="Gartner-MQ"),
    ]
    assert points_by_rule(score(model(ENGAGEMENT), events=events)) == {
        "engagement.webinar": 15,
        "engagement.gartner": 12,
        "engagement.case_study": 8,
    }


def test_an_event_counts_only_for_the_first_rule_it_matches():
    result = score(model(ENGAGEMENT), events=[event("page_view", url="https://x.io/pricing")])
    assert points_by_rule(result) == {"engagement.pricing_page": 5}


def test_engagement_cap_stops_page_view_spam():
    blog = [event("page_view", days_ago=i / 10, url=f"/blog/{i}") for i in range(40)]
    result = score(model(ENGAGEMENT), events=blog)
    assert result.score == 5
    assert result.contributions[0].detail == f"40 {TIMES} page_view (cap 5)"


def test_cap_limits_each_rule_separately():
    pricing = [event("page_view", url="/pricing") for _ in range(4)]
    result = score(model(ENGAGEMENT), events=[*pricing, event("page_view", url="/")])
    assert points_by_rule(result) == {"engagement.pricing_page": 15, "engagement.page_view": 1}
    assert result.contributions[0].detail == f"4 {TIMES} page_view url contains /pricing (cap 15)"


DECAY = ENGAGEMENT + "decay: {half_life_days: 30}\n"


def test_event_one_half_life_old_counts_half():
    result = score(model(DECAY), events=[event("demo_request", days_ago=30, form_id="d")])
    assert points_by_rule(result) == {"engagement.demo_request": 15.0}
    assert result.contributions[0].detail == f"1 {TIMES} demo_request, decayed"


def test_a_rule_with_its_own_half_life_decays_by_it_and_the_others_by_the_models():
    own = DECAY.replace("points: 30}", "points: 30, half_life_days: 60}")
    events = [
        event("demo_request", days_ago=60, form_id="d"),
        event("page_view", days_ago=30, url="/pricing"),
    ]
    assert points_by_rule(score(model(own), events=events)) == {
        "engagement.demo_request": 15.0,  # one of its own half-lives
        "engagement.pricing_page": 2.5,  # one of the model's
    }


def test_a_rule_with_its_own_half_life_decays_even_without_the_models_decay():
    own = ENGAGEMENT.replace("points: 30}", "points: 30, half_life_days: 10}")
    assert score(model(own), events=[event("demo_request", days_ago=10, form_id="d")]).score == 15


def test_event_two_half_lives_old_counts_a_quarter():
    result = score(model(DECAY), events=[event("demo_request", days_ago=60, form_id="d")])
    assert result.contributions[0].points == 7.5


def test_decayed_points_are_rounded_to_two_decimals():
    result = score(model(DECAY), events=[event("demo_request", days_ago=10, form_id="d")])
    assert result.contributions[0].points == 23.81  # 30 * 0.5^(1/3)
    assert result.score == 24


def test_cap_applies_to_decayed_points():
    fresh = [event("page_view", url="/pricing") for _ in range(3)]
    old = [event("page_view", days_ago=30, url="/pricing") for _ in range(2)]
    assert points_by_rule(score(model(DECAY), events=fresh + old))["engagement.pricing_page"] == 15
    assert points_by_rule(score(model(DECAY), events=old))["engagement.pricing_page"] == 5


def test_without_decay_old_events_count_in_full():
    old = [event("demo_request", days_ago=400, form_id="d")]
    assert score(model(ENGAGEMENT), events=old).score == 30


def test_event_after_the_scoring_time_counts_undecayed():
    early = [event("demo_request", days_ago=-0.001, form_id="d")]  # a client clock ahead of ours
    assert score(model(DECAY), events=early).score == 30


def test_scoring_time_must_be_timezone_aware():
    with pytest.raises(ValueError, match="timezone"):
        score_lead(model(), email=None, traits={}, events=(), at=datetime(2026, 1, 1))


# --- caps per day ---------------------------------------------------------------------------

DAILY = """\
engagement:
  - {id: pricing, event: page_view, where: {url: {contains: /pricing}}, points: 5, cap_per_day: 7}
  - {id: page_view, event: page_view, points: 1, cap: 5, cap_per_day: 2}
"""


def at_utc(day: int, hour: float) -> datetime:
    return datetime(2026, 11, day, tzinfo=UTC) + timedelta(hours=hour)


def test_cap_per_day_limits_the_points_of_one_day():
    binge = [event("page_view", days_ago=i / 1000, url=f"/blog/{i}") for i in range(10)]
    result = score(model(DAILY), events=binge)
    assert points_by_rule(result) == {"engagement.page_view": 2}
    assert result.contributions[0].detail == f"10 {TIMES} page_view on 1 day (cap 2 a day, 5 in all)"


def test_cap_per_day_lets_each_calendar_day_count():
    visits = [LeadEvent("page_view", at_utc(day, 10), {"url": "/"}) for day in (17, 18, 19)] * 3
    result = score_lead(model(DAILY), email=None, traits={}, events=visits, at=NOW)
    assert points_by_rule(result) == {"engagement.page_view": 5}  # 3 days x 2, then the total cap
    assert result.contributions[0].detail == f"9 {TIMES} page_view on 3 days (cap 2 a day, 5 in all)"


def test_cap_per_day_counts_utc_days():
    new_york = timezone(timedelta(hours=-5))
    late_evening_in_new_york = datetime(2026, 11, 18, 21, 0, tzinfo=new_york)  # 02:00 UTC on the 19th
    views = [
        LeadEvent("page_view", at_utc(18, 23.5), {"url": "/pricing"}),
        LeadEvent("page_view", at_utc(19, 0.5), {"url": "/pricing"}),
        LeadEvent("page_view", late_evening_in_new_york, {"url": "/pricing"}),
    ]
    result = score_lead(model(DAILY), email=None, traits={}, events=views, at=at_utc(19, 3))
    assert points_by_rule(result) == {"engagement.pricing": 12}  # the 18th: 5; the 19th: 10 -> 7
    assert "on 2 days" in result.contributions[0].detail


def test_cap_per_day_applies_to_decayed_points():
    decaying = DAILY + "decay: {half_life_days: 1}\n"
    two_days_old = [LeadEvent("page_view", at_utc(18, 12), {"url": "/pricing"})] * 2  # 10 -> 2.5
    today = [LeadEvent("page_view", at_utc(20, 12), {"url": "/pricing"})] * 2  # 10 -> capped at 7
    result = score_lead(
        model(decaying), email=None, traits={}, events=two_days_old + today, at=at_utc(20, 12)
    )
    assert points_by_rule(result) == {"engagement.pricing": 9.5}
    assert (
        result.contributions[0].detail
        == f"4 {TIMES} page_view url contains /pricing on 2 days, decayed (cap 7 a day)"
    )


def test_cap_per_day_bounds_penalties_by_size():
    negative = """\
    engagement:
      - {id: bounced, event: email_open, points: -3, cap_per_day: 4}
    """
    opens = [event("email_open", days_ago=i / 100) for i in range(5)]
    assert score(model(negative), events=opens).score == -4


# --- undesirables ---------------------------------------------------------------------------

UNDESIRABLES = """\
undesirables:
  - {id: student_title, title: '\\b(student|intern)\\b', disqualify: true}
  - {id: competitor, domain: [rival.com], disqualify: true}
  - {id: unsubscribed, event: unsubscribe, disqualify: true}
  - {id: procurement_title, title: procurement, points: -30}
  - {id: free_mail, domain: [gmail.com, yahoo.com], points: -20}
  - {id: job_seeker, event: page_view, where: {url: {contains: /careers}}, points: -10}
"""


def test_free_mail_domain_costs_points():
    result = score(model(UNDESIRABLES), email="Ana.Lopez@GMail.com")
    assert points_by_rule(result) == {"undesirable.free_mail": -20}
    assert result.contributions[0].detail == "email domain gmail.com is listed"
    assert result.score == -20 and result.disqualified is None


def test_negative_points_apply_once_however_many_events_match():
    careers = [event("page_view", url="/careers/1"), event("page_view", url="/careers/2")]
    assert score(model(UNDESIRABLES), events=careers).score == -10


def test_procurement_title_costs_points():
    result = score(model(UNDESIRABLES), traits={"title": "Head of Procurement"})
    assert (result.score, result.disqualified) == (-30, None)


def test_student_title_disqualifies():
    result = score(model(UNDESIRABLES), traits={"title": "Graduate Student"})
    assert result.disqualified == "undesirable.student_title: title matches 'Student'"


def test_title_words_only_disqualify_as_whole_words():
    result = score(model(UNDESIRABLES), traits={"title": "Director of International Sales"})
    assert result.disqualified is None


@pytest.mark.parametrize(
    ("email", "traits"),
    [
        ("spy@rival.com", {}),
        ("spy@eu.rival.com", {}),
        ("spy@gmail.com", {"company_domain": "Rival.com"}),
    ],
)
def test_competitor_domain_disqualifies(email: str, traits: dict[str, Any]):
    result = score(model(UNDESIRABLES), email=email, traits=traits)
    assert result.disqualified is not None
    assert result.disqualified.startswith("undesirable.competitor: ")


def test_unsubscribe_event_disqualifies():
    result = score(model(UNDESIRABLES), events=[event("unsubscribe")])
    assert result.disqualified == "undesirable.unsubscribed: unsubscribe tracked"


def test_the_first_disqualifier_in_the_model_is_reported():
    result = score(model(UNDESIRABLES), email="a@rival.com", traits={"title": "Intern"})
    assert result.disqualified is not None
    assert result.disqualified.startswith("undesirable.student_title")


# --- the MQL rule ---------------------------------------------------------------------------

MQL = FIT + ENGAGEMENT + UNDESIRABLES
GOOD_FIT = {"title": "VP Marketing", "company_size": 500, "industry": "software", "country": "US"}
HOT = [event("demo_request", form_id="d"), *[event("page_view", url="/pricing")] * 4]


def test_lead_with_min_score_and_min_grade_meets_the_mql_rule():
    scoring_model = model(MQL)
    blog = [event("page_view", url=f"/blog/{i}") for i in range(5)]
    just_below = score(scoring_model, traits=GOOD_FIT, events=HOT + blog[:4])
    at_threshold = score(scoring_model, traits=GOOD_FIT, events=HOT + blog)
    assert (just_below.score, at_threshold.score, at_threshold.grade) == (49, 50, "A")
    assert not meets_mql_rule(scoring_model, just_below)
    assert meets_mql_rule(scoring_model, at_threshold)


@pytest.mark.parametrize(("grade", "meets"), [("A", True), ("B", True), ("C", False), ("D", False)])
def test_grade_must_be_at_least_the_min_grade(grade: str, meets: bool):
    scoring_model = model()  # min_score 50, min_grade B
    result = LeadScore(50, 0, grade, (), None, "test-1")  # type: ignore[arg-type]
    assert meets_mql_rule(scoring_model, result) is meets


def test_grade_below_min_grade_misses_the_mql_rule():
    scoring_model = model(MQL)
    result = score(scoring_model, traits={"country": "US"}, events=[*HOT, *HOT])
    assert result.score >= 50 and result.grade == "D"
    assert not meets_mql_rule(scoring_model, result)


def test_disqualified_lead_never_meets_the_mql_rule():
    scoring_model = model(MQL)
    events = [*HOT, event("page_view", url="/"), event("unsubscribe")]
    result = score(scoring_model, traits=GOOD_FIT, events=events * 10)
    assert result.score >= 50 and result.grade == "A"
    assert not meets_mql_rule(scoring_model, result)


def test_contributions_are_listed_biggest_first_and_score_carries_the_model_version():
    result = score(model(MQL), email="x@gmail.com", traits=GOOD_FIT, events=HOT)
    sizes = [abs(c.points) for c in result.contributions]
    assert sizes == sorted(sizes, reverse=True)
    assert {c.kind for c in result.contributions} == {"fit", "engagement", "undesirable"}
    assert result.model_version == "test-1"


COOLOFF = BASE.replace("min_grade: B}", "min_grade: B, cooloff_days: 7}")


def test_lead_never_recycled_may_qualify():
    assert may_requalify(parse_model(COOLOFF), recycled_at=None, at=NOW)


@pytest.mark.parametrize(
    ("since_recycled", "may"),
    [
        (timedelta(0), False),
        (timedelta(days=6, hours=23), False),
        (timedelta(days=7), True),
        (timedelta(days=30), True),
    ],
)
def test_recycled_lead_may_not_requalify_until_the_cooloff_has_passed(since_recycled: timedelta, may: bool):
    recycled_at = NOW - since_recycled
    assert may_requalify(parse_model(COOLOFF), recycled_at=recycled_at, at=NOW) is may


def test_without_a_cooloff_a_recycled_lead_may_requalify_at_once():
    scoring_model = model()  # cooloff_days defaults to 0
    assert scoring_model.mql.cooloff_days == 0
    assert may_requalify(scoring_model, recycled_at=NOW, at=NOW)
    # Even on events stamped before the recycle (a client clock behind ours).
    assert may_requalify(scoring_model, recycled_at=NOW, at=NOW - timedelta(minutes=5))


def test_cooloff_may_be_a_fraction_of_a_day():
    half_day = parse_model(BASE.replace("min_grade: B}", "min_grade: B, cooloff_days: 0.5}"))
    assert not may_requalify(half_day, recycled_at=NOW, at=NOW + timedelta(hours=11))
    assert may_requalify(half_day, recycled_at=NOW, at=NOW + timedelta(hours=12))


@pytest.mark.parametrize(
    ("email", "domain"),
    [("Ana@Acme.COM", "acme.com"), ("weird@name@acme.io", "acme.io"), ("nobody", None), (None, None)],
)
def test_email_domain_is_the_lower_cased_part_after_the_at(email: str | None, domain: str | None):
    assert email_domain(email) == domain


# --- order independence ---------------------------------------------------------------------

ORDER_MODEL = parse_model(BASE + FIT + CHANNEL + DECAY + UNDESIRABLES)

events_strategy = st.lists(
    st.builds(
        event,
        st.sampled_from(["page_view", "demo_request", "content_download", "unsubscribe"]),
        st.integers(min_value=0, max_value=3).map(float),  # few distinct times: many ties
        url=st.sampled_from(["/", "/pricing", "/careers", "/blog/a"]),
        utm_medium=st.sampled_from(["cpc", "referral", "purchased_list", ""]),
        content_id=st.sampled_from(["case-1", "gartner-mq", "ebook"]),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(events=events_strategy, data=st.data())
def test_shuffling_events_gives_the_same_score(events: list[LeadEvent], data: st.DataObject):
    shuffled = data.draw(st.permutations(events))
    assert score(ORDER_MODEL, events=shuffled) == score(ORDER_MODEL, events=events)


# --- the default model: personas ------------------------------------------------------------


@pytest.fixture(scope="module")
def default_model() -> ScoringModel:
    return load_model(DEFAULT_MODEL)


def test_good_fit_buyer_who_requests_a_demo_is_an_mql(default_model: ScoringModel):
    traits = {
        "title": "VP of Marketing",
        "company_size": 500,
        "industry": "Software",
        "country": "US",
    }
    events = [
        event("page_view", days_ago=4, url="https://leadflow.io/", utm_medium="organic"),
        event("page_view", days_ago=3, url="https://leadflow.io/pricing"),
        event("page_view", days_ago=2, url="https://leadflow.io/pricing"),
        event("content_download", days_ago=2, content_id="whitepaper-lead-scoring"),
        event("demo_request", days_ago=1, form_id="demo"),
    ]
    result = score(default_model, email="dana@northwind.io", traits=traits, events=events)
    assert result.grade in ("A", "B")
    assert meets_mql_rule(default_model, result)


def test_gmail_student_is_not_an_mql(default_model: ScoringModel):
    events = [event("page_view", url="/pricing"), event("demo_request", form_id="demo")] * 3
    traits = {"title": "Student", "company": "State University", "country": "US"}
    result = score(default_model, email="kim@gmail.com", traits=traits, events=events)
    assert result.disqualified is not None
    assert "undesirable.free_mail" in points_by_rule(result)
    assert not meets_mql_rule(default_model, result)


def test_procurement_officer_is_not_an_mql(default_model: ScoringModel):
    traits = {
        "title": "Procurement Officer",
        "company_size": 500,
        "industry": "Software",
        "country": "US",
    }
    events = [
        *[event("page_view", days_ago=2, url="/pricing")] * 3,
        event("content_download", days_ago=2, content_id="security-whitepaper"),
        event("demo_request", days_ago=1, form_id="demo"),
    ]
    result = score(default_model, email="pat@northwind.io", traits=traits, events=events)
    assert result.disqualified is None  # procurement costs points; it does not disqualify
    assert points_by_rule(result)["undesirable.procurement_title"] < 0
    assert not meets_mql_rule(default_model, result)


def test_tire_kicker_reading_only_the_blog_is_not_an_mql(default_model: ScoringModel):
    traits = {"title": "Director of Marketing", "company_size": 300, "industry": "Software"}
    blog = [event("page_view", days_ago=i % 20, url=f"/blog/post-{i}") for i in range(60)]
    result = score(default_model, email="lee@northwind.io", traits=traits, events=blog)
    assert result.grade in ("A", "B")
    assert result.score <= 5
    assert not meets_mql_rule(default_model, result)


def test_target_account_list_gives_fit_points_to_the_company_and_its_subdomains() -> None:
    model = parse_model(
        'version: "t"\ngrades: {A: 60, B: 40, C: 20}\n'
        "fit:\n  - id: account.target\n    company_domain: [Globex.example]\n    points: 15\n"
        "mql: {min_score: 10, min_grade: C}\n"
    )
    at = datetime(2026, 11, 24, tzinfo=UTC)
    listed = score_lead(model, email=None, traits={"company_domain": "emea.globex.example"}, events=[], at=at)
    other = score_lead(model, email=None, traits={"company_domain": "initech.example"}, events=[], at=at)
    assert listed.fit_points == 15 and listed.contributions[0].rule == "fit.account.target"
    assert other.fit_points == 0
