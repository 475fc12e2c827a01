from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.handoff.config_files import load_sla_config
from services.handoff.sla import (
    BreachAction,
    SlaConfig,
    SlaConfigError,
    SlaPolicy,
    choose_policy,
    decide_by,
    qualify_by,
    warn_at,
    warning_at,
)

SHIPPED = Path(__file__).parents[2] / "config" / "sla.yaml"
MQL_AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday, 10:00 in Berlin
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture(scope="module")
def config() -> SlaConfig:
    return load_sla_config(SHIPPED)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sla.yaml"
    path.write_text(text)
    return path


def test_shipped_config_has_a_hot_policy_a_standard_fallback_and_one_for_exploration(config: SlaConfig):
    assert [p.name for p in config.policies] == ["hot", "standard", "exploration"]
    assert config.fallback.name == "standard"
    assert config.exploration.name == "exploration"


def test_the_exploration_policy_is_never_chosen_for_an_mql_and_defaults_to_the_fallback(config: SlaConfig):
    events = [("demo_request", MQL_AT - timedelta(hours=1))]
    assert choose_policy(config, recent_events=events, mql_at=MQL_AT).name == "hot"
    assert choose_policy(config, recent_events=[], mql_at=MQL_AT).name == "standard"
    without = SlaConfig(
        policies=[p for p in config.policies if not p.for_exploration], calendars=config.calendars
    )
    assert without.exploration.name == "standard"
    assert config.default_owner == "inbound-queue"


@pytest.mark.parametrize("trigger", ["demo_request", "contact_sales"])
def test_a_recent_demo_or_sales_request_makes_the_lead_hot(config: SlaConfig, trigger: str):
    events = [("page_view", MQL_AT - timedelta(hours=1)), (trigger, MQL_AT - timedelta(hours=3))]
    assert choose_policy(config, recent_events=events, mql_at=MQL_AT).name == "hot"


def test_a_request_exactly_at_the_window_edge_still_counts(config: SlaConfig):
    events = [("demo_request", MQL_AT - timedelta(hours=24))]
    assert choose_policy(config, recent_events=events, mql_at=MQL_AT).name == "hot"


def test_a_request_just_outside_the_window_is_standard(config: SlaConfig):
    events = [("demo_request", MQL_AT - timedelta(hours=24, seconds=1))]
    assert choose_policy(config, recent_events=events, mql_at=MQL_AT).name == "standard"


def test_a_request_after_the_mql_does_not_make_it_hot(config: SlaConfig):
    events = [("demo_request", MQL_AT + timedelta(minutes=1))]
    assert choose_policy(config, recent_events=events, mql_at=MQL_AT).name == "standard"


def test_a_lead_without_trigger_events_gets_the_fallback(config: SlaConfig):
    events = [("page_view", MQL_AT), ("webinar_attended", MQL_AT - timedelta(hours=2))]
    assert choose_policy(config, recent_events=events, mql_at=MQL_AT).name == "standard"
    assert choose_policy(config, recent_events=[], mql_at=MQL_AT).name == "standard"


def test_the_first_matching_policy_in_file_order_wins():
    def policy(name: str, hot: bool) -> dict[str, object]:
        selector = {"trigger_event_types": ["demo_request"], "within_hours": 24}
        limits = {"decide_within_hours": 1, "qualify_within_hours": 24}
        return {"name": name, **limits, **({"applies_when": selector} if hot else {})}

    policies = [policy("standard", False), policy("first", True), policy("second", True)]
    config = SlaConfig.model_validate({"policies": policies})
    events = [("demo_request", MQL_AT)]
    assert choose_policy(config, recent_events=events, mql_at=MQL_AT).name == "first"


def test_shipped_config_has_an_emea_and_an_amer_calendar(config: SlaConfig):
    emea, amer = config.calendar_named("emea"), config.calendar_named("amer")
    assert (emea.timezone, amer.timezone) == ("Europe/Berlin", "America/New_York")
    assert emea.holidays and amer.holidays


def test_hot_leads_must_be_decided_within_2_business_hours_or_go_to_the_sales_managers(config: SlaConfig):
    hot = config.policies[0]
    assert (hot.calendar, hot.decide_within_hours) == ("emea", 2)
    assert hot.on_breach == BreachAction(alert=True, reassign_to="sales-managers")
    due = decide_by(hot, MQL_AT)
    assert due == MQL_AT + timedelta(hours=2)  # Monday 10:00 -> 12:00, all within hours
    assert warning_at(hot, MQL_AT, due) == MQL_AT + timedelta(minutes=90)


def test_a_hot_mql_late_on_friday_is_due_monday_morning_and_warned_half_an_hour_before(config: SlaConfig):
    hot = config.policies[0]
    friday = datetime(2026, 6, 12, 17, 0, tzinfo=BERLIN)  # half an hour before closing
    due = decide_by(hot, friday)
    assert due.astimezone(BERLIN) == datetime(2026, 6, 15, 10, 30, tzinfo=BERLIN)
    # 75% of the two business hours, not 75% of the weekend.
    assert warning_at(hot, friday, due).astimezone(BERLIN) == datetime(2026, 6, 15, 10, 0, tzinfo=BERLIN)


def test_standard_leads_must_be_decided_within_8_business_hours(config: SlaConfig):
    standard = config.fallback
    assert (standard.calendar, standard.decide_within_hours) == ("emea", 8)
    assert standard.on_breach == BreachAction(alert=True, reassign_to=None)
    # Monday 10:00 in Berlin: 7.5 hours until 17:30, the last half hour on Tuesday morning.
    assert decide_by(standard, MQL_AT).astimezone(BERLIN) == datetime(2026, 3, 3, 9, 30, tzinfo=BERLIN)


def test_accepted_leads_must_be_qualified_within_the_policy_business_hours(config: SlaConfig):
    standard = config.fallback
    accepted_at = datetime(2026, 3, 2, 10, 0, tzinfo=BERLIN)  # Monday
    due = qualify_by(standard, accepted_at)
    # 24 business hours of 8.5 a day: Monday 7.5, Tuesday 8.5, Wednesday 8 -> Wednesday 17:00.
    assert due.astimezone(BERLIN) == datetime(2026, 3, 4, 17, 0, tzinfo=BERLIN)
    assert warning_at(standard, accepted_at, due).astimezone(BERLIN) == datetime(
        2026, 3, 4, 11, 0, tzinfo=BERLIN
    )


def test_a_holiday_on_the_team_calendar_does_not_count(config: SlaConfig):
    good_friday_eve = datetime(2026, 4, 2, 16, 30, tzinfo=BERLIN)  # Thursday; Friday and Monday are off
    due = decide_by(config.policies[0], good_friday_eve)
    assert due.astimezone(BERLIN) == datetime(2026, 4, 7, 10, 0, tzinfo=BERLIN)


def test_the_assigned_team_calendar_can_replace_the_policy_calendar(config: SlaConfig):
    friday = datetime(2026, 6, 12, 16, 30, tzinfo=NEW_YORK)
    due = decide_by(config.policies[0], friday, calendar=config.calendar_named("amer"))
    assert due.astimezone(NEW_YORK) == datetime(2026, 6, 15, 10, 30, tzinfo=NEW_YORK)


def wall_clock(**limits: float) -> SlaPolicy:
    config = SlaConfig.model_validate(
        {"policies": [{"name": "standard", "decide_within_hours": 8, "qualify_within_hours": 72, **limits}]}
    )
    return config.fallback


def test_a_policy_without_calendar_counts_wall_clock_hours():
    policy = wall_clock()
    assert decide_by(policy, MQL_AT) == MQL_AT + timedelta(hours=8)
    accepted_at = MQL_AT + timedelta(hours=2)
    due = qualify_by(policy, accepted_at)
    assert due == accepted_at + timedelta(hours=72)
    assert warning_at(policy, accepted_at, due) == accepted_at + timedelta(hours=54)


def test_warn_at_is_still_there_and_agrees_with_warning_at(config: SlaConfig):
    for policy in [*config.policies, wall_clock(warn_at=0.5)]:
        due = decide_by(policy, MQL_AT)
        assert warn_at(policy, MQL_AT, due) == warning_at(policy, MQL_AT, due)


def test_a_policy_naming_a_calendar_needs_the_config_that_defines_it():
    stray = SlaPolicy(name="hot", decide_within_hours=2, qualify_within_hours=16, calendar="emea")
    with pytest.raises(SlaConfigError, match="not loaded through an SlaConfig"):
        decide_by(stray, MQL_AT)


def test_asking_for_an_unknown_calendar_by_name_is_refused(config: SlaConfig):
    with pytest.raises(SlaConfigError, match="no calendar named 'apac'; known: emea, amer"):
        config.calendar_named("apac")


@pytest.mark.parametrize("warning", [warn_at, warning_at])
def test_warning_point_cannot_be_computed_for_a_deadline_before_its_start(config: SlaConfig, warning):
    with pytest.raises(ValueError, match="before start"):
        warning(config.fallback, MQL_AT, MQL_AT - timedelta(hours=1))


STANDARD = "  - {name: standard, decide_within_hours: 8, qualify_within_hours: 72}\n"
HOT = (
    "  - name: hot\n"
    "    decide_within_hours: 1\n"
    "    qualify_within_hours: 24\n"
    "    applies_when: {trigger_event_types: [demo_request], within_hours: 24}\n"
)
CALENDAR_ITEM = '  - {name: emea, timezone: Europe/Berlin, weekly_hours: {mon: [["09:00", "17:30"]]}}\n'
CALENDAR = "calendars:\n" + CALENDAR_ITEM


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("policies:\n" + HOT, "exactly one policy must have no applies_when"),
        ("policies:\n" + STANDARD + STANDARD.replace("standard", "other"), "found 2"),
        ("policies:\n" + HOT + HOT + STANDARD, "repeated: hot"),
        ("policies: []\n", "policies"),
        ("", "policies: Field required"),
        ("- just a list\n", "(top level)"),
        ("policies:\n" + STANDARD.replace("8,", "0,"), "decide_within_hours"),
        ("policies:\n" + STANDARD.replace("}", ", warn_at: 1.5}"), "warn_at"),
        ("policies:\n" + STANDARD.replace("}", ", decide_whithin: 2}"), "decide_whithin"),
        ("policies:\n" + HOT.replace("[demo_request]", "[]") + STANDARD, "trigger_event_types"),
        ("policies: [\n", "cannot read"),
        ("policies:\n" + STANDARD.replace("}", ", calendar: emea}"), "names calendar 'emea'"),
        (CALENDAR + "policies:\n" + STANDARD.replace("}", ", calendar: amer}"), "not in calendars (emea)"),
        (
            CALENDAR + CALENDAR_ITEM + "policies:\n" + STANDARD,
            "calendar names must be unique; repeated: emea",
        ),
        (
            CALENDAR.replace("Europe/Berlin", "Europe/Berln") + "policies:\n" + STANDARD,
            "calendars.0.timezone",
        ),
        (CALENDAR.replace('"17:30"', "17:30") + "policies:\n" + STANDARD, "quote times"),
        ("policies:\n" + STANDARD.replace("}", ", on_breach: {alert: false}}"), "on_breach must alert"),
        ("policies:\n" + STANDARD.replace("}", ", on_breach: {reasign_to: x}}"), "reasign_to"),
    ],
)
def test_a_bad_config_is_refused_naming_the_file_and_the_problem(tmp_path: Path, text: str, problem: str):
    path = write(tmp_path, text)
    with pytest.raises(SlaConfigError) as refused:
        load_sla_config(path)
    assert str(path) in str(refused.value)
    assert problem in str(refused.value)


def test_a_missing_config_file_is_refused_naming_it(tmp_path: Path):
    with pytest.raises(SlaConfigError, match=r"nowhere\.yaml"):
        load_sla_config(tmp_path / "nowhere.yaml")
