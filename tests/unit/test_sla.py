from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.handoff.sla import (
    SlaConfig,
    SlaConfigError,
    choose_policy,
    decide_by,
    load_sla_config,
    qualify_by,
    warn_at,
)

SHIPPED = Path(__file__).parents[2] / "config" / "sla.yaml"
MQL_AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def config() -> SlaConfig:
    return load_sla_config(SHIPPED)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sla.yaml"
    path.write_text(text)
    return path


def test_shipped_config_has_a_hot_policy_and_a_standard_fallback(config: SlaConfig):
    assert [p.name for p in config.policies] == ["hot", "standard"]
    assert config.fallback.name == "standard"
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


def test_hot_leads_must_be_decided_within_an_hour_and_warned_at_45_minutes(config: SlaConfig):
    hot = config.policies[0]
    due = decide_by(hot, MQL_AT)
    assert due == MQL_AT + timedelta(hours=1)
    assert warn_at(hot, MQL_AT, due) == MQL_AT + timedelta(minutes=45)


def test_standard_leads_must_be_decided_within_8_hours_and_qualified_within_72(
    config: SlaConfig,
):
    standard = config.fallback
    assert decide_by(standard, MQL_AT) == MQL_AT + timedelta(hours=8)
    accepted_at = MQL_AT + timedelta(hours=2)
    due = qualify_by(standard, accepted_at)
    assert due == accepted_at + timedelta(hours=72)
    assert warn_at(standard, accepted_at, due) == accepted_at + timedelta(hours=54)


def test_warning_point_cannot_be_computed_for_a_deadline_before_its_start(config: SlaConfig):
    with pytest.raises(ValueError, match="before start"):
        warn_at(config.fallback, MQL_AT, MQL_AT - timedelta(hours=1))


STANDARD = "  - {name: standard, decide_within_hours: 8, qualify_within_hours: 72}\n"
HOT = (
    "  - name: hot\n"
    "    decide_within_hours: 1\n"
    "    qualify_within_hours: 24\n"
    "    applies_when: {trigger_event_types: [demo_request], within_hours: 24}\n"
)


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
