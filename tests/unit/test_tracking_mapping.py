"""How Segment / RudderStack messages become intake events (services/intake/tracking_mapping.py):
types, traits, identities, times, campaigns, and the failures that become failed events."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.intake.config_files import load_tracking_mapping, load_tracking_plan
from services.intake.domain import IntakeEvent
from services.intake.event_limits import EventLimits
from services.intake.tracking_mapping import (
    REDACTED,
    Failure,
    Rules,
    TrackMappingError,
    event_id_of,
    map_message,
    redact,
    snake_case,
)
from shared.auth import presented_key

CONFIG = Path(__file__).parents[2] / "config"
PLAN = load_tracking_plan(CONFIG / "tracking-plan.yaml")
RULES = Rules(PLAN, load_tracking_mapping(CONFIG / "tracking-mapping.yaml", PLAN), EventLimits())
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def mapped(message: dict[str, Any], **options: Any) -> list[IntakeEvent]:
    result = map_message(
        message,
        route_type=options.get("route_type"),
        batch_context=options.get("batch_context", {}),
        sent_at=options.get("sent_at"),
        received_at=NOW,
        rules=RULES,
    )
    assert isinstance(result, list), result
    return result


def failure(message: dict[str, Any]) -> Failure:
    result = map_message(
        message, route_type=None, batch_context={}, sent_at=None, received_at=NOW, rules=RULES
    )
    assert isinstance(result, Failure), result
    return result


@pytest.mark.parametrize(
    "name", ["Demo Request", "demo request", "demo_request", "DemoRequest", " Demo-Request "]
)
def test_track_names_map_to_the_plan_type_in_snake_case(name: str) -> None:
    assert snake_case(name) == "demo_request"
    [event] = mapped({"type": "track", "userId": "u1", "event": name, "properties": {"form_id": "f"}})
    assert event.type == "demo_request"


def test_the_mapping_file_names_track_events_spelled_otherwise() -> None:
    [event] = mapped({"type": "track", "anonymousId": "a", "event": "Signed Up"})
    assert event.type == "trial_signup"
    [event] = mapped(
        {"type": "track", "anonymousId": "a", "event": "demo requested", "properties": {"form_id": "f"}}
    )
    assert event.type == "demo_request"


def test_a_mapping_to_a_type_the_plan_lacks_refuses_to_load(tmp_path: Path) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text('version: "1"\nevents:\n  Signed Up: sign_up\n')
    with pytest.raises(TrackMappingError, match=r"line 3: events\.Signed Up: 'sign_up' is not a type of"):
        load_tracking_mapping(path, PLAN)


def test_an_unmapped_track_event_and_a_message_without_identity_are_failures() -> None:
    assert failure({"type": "track", "userId": "u", "event": "Spaceship Launched"}).reason == "unmapped_event"
    assert failure({"type": "track", "event": "Demo Request"}).reason == "identity_required"
    assert failure({"type": "bogus", "userId": "u"}).reason == "literal_error"
    missing = failure({"type": "track", "userId": "u", "event": "Demo Request"})
    assert (missing.reason, missing.field) == ("required_by_tracking_plan", "properties.form_id")
    assert failure({"type": "identify", "userId": "u", "traits": {"email": "nope"}}).reason == "email_format"


def test_identify_maps_traits_and_splits_a_name() -> None:
    traits = {
        "email": "Ada@Northwind.example",
        "name": "Ada King Lovelace",
        "title": "CTO",
        "company": {"name": "Northwind", "employee_count": "1200", "industry": "Software"},
        "website": "https://northwind.example",
        "address": {"country": "gb"},
        "phone": "+44 1",
        "plan": "pro",
    }
    [event, *_] = mapped({"type": "identify", "userId": "Ada@Northwind.example", "traits": traits})
    assert event.email == "Ada@Northwind.example"
    assert event.traits.model_dump(exclude_none=True) == {
        "first_name": "Ada",
        "last_name": "King Lovelace",
        "title": "CTO",
        "company": "Northwind",
        "company_size": 1200,
        "industry": "Software",
        "country": "GB",
        "phone": "+44 1",
        "website": "https://northwind.example",
        "plan": "pro",
    }


def test_first_and_last_names_win_over_the_name_and_a_long_country_is_kept_aside() -> None:
    traits = {"firstName": "Grace", "lastName": "Hopper", "name": "G H", "country": "United States"}
    [event] = mapped({"type": "identify", "anonymousId": "a", "traits": traits})
    assert (event.traits.first_name, event.traits.last_name, event.traits.country) == (
        "Grace",
        "Hopper",
        None,
    )
    assert (event.traits.model_extra or {})["country_name"] == "United States"


def test_an_identify_links_the_anonymous_history_and_the_user_id_to_the_email() -> None:
    message = {
        "type": "identify",
        "messageId": "m-1",
        "userId": "42",
        "anonymousId": "anon-1",
        "traits": {"email": "ada@x.example"},
    }
    first, second = mapped(message)
    assert (first.email, first.anonymous_id, first.event_id) == ("ada@x.example", "anon-1", "m-1")
    assert (second.email, second.anonymous_id, second.event_id) == ("ada@x.example", "user:42", "m-1:1")
    assert second.previous_id is None  # the email joins them: a shared device is no alias conflict


def test_a_call_with_only_a_user_id_is_keyed_by_it_and_an_email_user_id_is_the_email() -> None:
    [event] = mapped({"type": "track", "userId": 42, "event": "Signed Up"})
    assert (event.email, event.anonymous_id) == (None, "user:42")
    [event] = mapped({"type": "track", "userId": "ada@x.example", "anonymousId": "a", "event": "Signed Up"})
    assert (event.email, event.anonymous_id) == ("ada@x.example", "a")


def ids(events: list[IntakeEvent]) -> list[tuple[str | None, str | None, str | None]]:
    return [(e.email, e.anonymous_id, e.previous_id) for e in events]


def test_an_identify_without_an_email_still_links_the_anonymous_history_to_the_user_id() -> None:
    message = {"type": "identify", "messageId": "m-2", "userId": "42", "anonymousId": "anon-1", "traits": {}}
    assert ids(mapped(message)) == [(None, "anon-1", None), (None, "user:42", "anon-1")]


def test_an_alias_between_opaque_ids_names_the_previous_id_as_either_kind_of_id() -> None:
    alias = {"type": "alias", "messageId": "m-3", "previousId": "42", "userId": "43"}
    events = mapped(alias)
    assert ids(events) == [(None, "user:43", "42"), (None, "user:43", "user:42")]
    assert [(e.type, e.event_id) for e in events] == [("identify", "m-3"), ("identify", "m-3:1")]
    with_browser = mapped({**alias, "anonymousId": "anon-1"})
    assert ids(with_browser)[-1] == (None, "user:43", "anon-1")


def test_an_alias_to_an_email_user_id_links_the_previous_id_to_the_email() -> None:
    events = mapped({"type": "alias", "previousId": "anon-9", "userId": "ada@x.example"})
    assert ids(events) == [("ada@x.example", None, "anon-9"), ("ada@x.example", None, "user:anon-9")]


def test_an_alias_from_an_email_makes_the_user_id_that_persons() -> None:
    events = mapped({"type": "alias", "previousId": "ada@x.example", "userId": "43"})
    assert ids(events) == [("ada@x.example", None, "user:43")]


def test_an_alias_between_two_emails_or_without_a_previous_id_is_a_failure() -> None:
    two = {"type": "alias", "previousId": "ada@x.example", "userId": "bob@x.example"}
    assert (failure(two).reason, failure(two).field) == ("alias_conflict", "previousId")
    assert failure({"type": "alias", "userId": "43"}).reason == "alias_needs_previous_id"


def test_page_and_screen_are_page_views_with_a_url() -> None:
    page = {
        "type": "page",
        "anonymousId": "a",
        "name": "Pricing",
        "context": {"page": {"url": "https://x/pricing"}},
    }
    [event] = mapped(page)
    assert (event.type, event.properties["url"], event.properties["name"]) == (
        "page_view",
        "https://x/pricing",
        "Pricing",
    )
    [event] = mapped({"type": "page", "anonymousId": "a", "properties": {"url": "https://x/a"}})
    assert event.properties["url"] == "https://x/a"
    [event] = mapped({"type": "screen", "anonymousId": "a", "name": "Home"})
    assert (event.type, event.properties["url"]) == ("page_view", "screen:Home")


def test_group_gives_the_person_company_traits() -> None:
    traits = {"name": "Acme", "employees": 300, "industry": "Retail", "website": "www.acme.example"}
    group = {"type": "group", "userId": "u", "groupId": "g1", "traits": traits}
    [event] = mapped(group)
    assert event.type == "identify"
    assert event.traits.model_dump(exclude_none=True, exclude={"group_id"}) == {
        "company": "Acme",
        "company_domain": "acme.example",
        "company_size": 300,
        "industry": "Retail",
    }
    assert event.properties["group_id"] == "g1"
    assert (event.traits.group_id, event.anonymous_id) == ("g1", "user:u")  # what account matching reads


def test_campaign_and_context_traits_reach_the_event() -> None:
    context = {"campaign": {"name": "spring", "source": "google", "medium": "cpc"}, "traits": {"title": "VP"}}
    [event] = mapped({"type": "track", "anonymousId": "a", "event": "Signed Up", "context": context})
    assert {
        k: event.properties[k] for k in ("campaign", "source", "utm_campaign", "utm_source", "utm_medium")
    } == {
        "campaign": "spring",
        "source": "google",
        "utm_campaign": "spring",
        "utm_source": "google",
        "utm_medium": "cpc",
    }
    assert event.traits.title == "VP"


def test_nested_properties_are_flattened_and_lists_left_out() -> None:
    props = {"form_id": "f", "plan": {"tier": "pro", "seats": 3}, "items": [1, 2]}
    [event] = mapped({"type": "track", "anonymousId": "a", "event": "Demo Request", "properties": props})
    assert event.properties == {"form_id": "f", "plan_tier": "pro", "plan_seats": 3}


def test_the_time_is_corrected_for_the_clients_clock_skew() -> None:
    client_clock_ahead = timedelta(hours=2)
    sent = NOW + client_clock_ahead
    stamp = (sent - timedelta(minutes=3)).isoformat()
    message = {"type": "track", "anonymousId": "a", "event": "Signed Up", "timestamp": stamp}
    [event] = mapped(message, sent_at=sent)
    assert event.occurred_at == NOW - timedelta(minutes=3)
    [event] = mapped({**message, "timestamp": None, "originalTimestamp": "2026-12-01T11:00:00"})
    assert event.occurred_at == datetime(2026, 12, 1, 11, 0, tzinfo=UTC)
    [event] = mapped({"type": "track", "anonymousId": "a", "event": "Signed Up"})
    assert event.occurred_at == NOW


def test_message_ids_are_event_ids_and_odd_ones_are_hashed_the_same_way_each_time() -> None:
    assert event_id_of("8c1e6a70-0b4c-4a5b", 0) == "8c1e6a70-0b4c-4a5b"
    odd = event_id_of("id with spaces/and slashes", 0)
    assert odd == event_id_of("id with spaces/and slashes", 0) and odd is not None and odd.startswith("msg:")
    assert event_id_of(None, 0) is None


def test_a_sample_holds_nothing_personal() -> None:
    message = {
        "type": "identify",
        "userId": "u-1",
        "anonymousId": "a-1",
        "traits": {"email": "ada@x.example", "name": "Ada"},
        "properties": {"contact": "ada@x.example", "plan": "pro", "n": 3, "fullName": "Ada King"},
        "context": {"ip": "203.0.113.9", "page": {"url": "https://x.example/p?email=ada@x.example"}},
    }
    sample = redact(message)
    assert sample["userId"] == sample["anonymousId"] == REDACTED
    assert sample["traits"] == {"email": REDACTED, "name": REDACTED}
    assert sample["properties"] == {"contact": REDACTED, "plan": "pro", "n": 3, "fullName": REDACTED}
    assert "ip" not in sample["context"] and sample["context"]["page"]["url"] == REDACTED
    assert "ada" not in str(sample).lower() and "203.0.113.9" not in str(sample)


def test_a_write_key_comes_as_basic_user_name_bearer_or_header() -> None:
    basic = "Basic " + base64.b64encode(b"lf_key:").decode()
    assert presented_key(basic, None) == "lf_key"
    assert presented_key("Bearer lf_key", None) == "lf_key"
    assert presented_key(None, "lf_key") == "lf_key"
    assert presented_key("Basic !!!", None) is None
    assert presented_key("Basic " + base64.b64encode(b":").decode(), None) is None
