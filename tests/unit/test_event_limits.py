"""What intake refuses because scoring could not store it: each rule names its field, keys too,
and the value just inside each limit passes."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.intake.domain import IntakeEvent, identity_of
from services.intake.event_limits import INT64_MAX, INT64_MIN, EventLimits, limit_problems, size_problem
from shared.events import LeadEventAccepted
from shared.identities import normalize_anonymous_id, normalize_email

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
LIMITS = EventLimits()


def event(**fields: Any) -> IntakeEvent:
    body = {"type": "page_view", "occurred_at": "2026-11-24T11:00:00Z", "email": "ada@x.example", **fields}
    return IntakeEvent.model_validate(body)


def problems(**fields: Any) -> list[tuple[str, str]]:
    return [(e.field, e.rule) for e in limit_problems(event(**fields), LIMITS, now=NOW, at="events.3.")]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"email": "ada\x00@x.example"}, ("events.3.email", "no_nul")),
        ({"anonymous_id": "a\x00b"}, ("events.3.anonymous_id", "no_nul")),
        ({"properties": {"url": "https://x\x00"}}, ("events.3.properties.url", "no_nul")),
        ({"properties": {"url": "\ud800"}}, ("events.3.properties.url", "no_surrogates")),
        ({"properties": {"u\x00rl": "x"}}, ("events.3.properties.u\\x00rl", "no_nul")),
        ({"properties": {"u\udfffrl": "x"}}, ("events.3.properties.u\\udfffrl", "no_surrogates")),
        ({"traits": {"nickname": "a\x00"}}, ("events.3.traits.nickname", "no_nul")),
        ({"traits": {"nickname": "\udc80"}}, ("events.3.traits.nickname", "no_surrogates")),
        ({"traits": {"title": "VP\x00"}}, ("events.3.traits.title", "no_nul")),
        ({"traits": {"nick\x00": "a"}}, ("events.3.traits.nick\\x00", "no_nul")),
        ({"traits": {"nested": {"a": 1}}}, ("events.3.traits.nested", "not_scalar")),
        ({"traits": {"listed": [1, 2]}}, ("events.3.traits.listed", "not_scalar")),
        ({"traits": {"seats": INT64_MAX + 1}}, ("events.3.traits.seats", "int64")),
        ({"properties": {"n": INT64_MIN - 1}}, ("events.3.properties.n", "int64")),
        ({"properties": {"n": float("nan")}}, ("events.3.properties.n", "finite_number")),
        ({"traits": {"n": float("-inf")}}, ("events.3.traits.n", "finite_number")),
        ({"traits": {"k" * 65: 1}}, ("events.3.traits." + "k" * 64 + "…", "key_too_long")),
        ({"properties": {"k" * 65: 1}}, ("events.3.properties." + "k" * 64 + "…", "key_too_long")),
        ({"traits": {"bio": "x" * 2049}}, ("events.3.traits.bio", "string_too_long")),
        ({"properties": {"url": "x" * 2049}}, ("events.3.properties.url", "string_too_long")),
        ({"traits": {f"t{i}": i for i in range(51)}}, ("events.3.traits", "too_many_traits")),
        ({"properties": {f"p{i}": i for i in range(101)}}, ("events.3.properties", "too_many_properties")),
        ({"occurred_at": "0001-01-01T00:00:00+05:00"}, ("events.3.occurred_at", "too_old")),
        ({"occurred_at": "2016-11-23T12:00:00Z"}, ("events.3.occurred_at", "too_old")),
    ],
)
def test_what_scoring_could_not_store_is_refused_naming_field_and_rule(
    fields: dict[str, Any], expected: tuple[str, str]
) -> None:
    assert problems(**fields) == [expected]


def test_the_values_just_inside_every_limit_pass() -> None:
    assert not problems(
        occurred_at="2016-11-26T12:00:00Z",
        anonymous_id="a" * 128,
        traits={
            **{f"t{i}": i for i in range(47)},  # 50 custom traits with the three below
            "k" * 64: "x" * 2048,
            "seats": INT64_MAX,
            "ratio": 1.5e308,
            "title": "VP",
        },
        properties={**{f"p{i}": INT64_MIN for i in range(99)}, "url": "é" * 2048},
    )


def test_a_key_or_value_of_the_configured_size_is_the_limit() -> None:
    small = EventLimits(max_key_chars=4, max_value_chars=3, max_custom_traits=1, max_age=timedelta(days=1))
    found = limit_problems(
        event(traits={"abcde": "four", "b": 1}, occurred_at="2026-11-22T12:00:00Z"), small, now=NOW
    )
    assert [(e.field, e.rule) for e in found] == [
        ("occurred_at", "too_old"),
        ("traits", "too_many_traits"),
        ("traits.abcd…", "key_too_long"),
        ("traits.abcd…", "string_too_long"),
    ]


def test_an_event_larger_than_the_limit_as_published_is_refused() -> None:
    assert size_problem(LIMITS.max_event_bytes, LIMITS) is None
    too_large = size_problem(LIMITS.max_event_bytes + 1, LIMITS, at="events.7.")
    assert too_large is not None and (too_large.field, too_large.rule) == ("events.7", "event_too_large")
    single = size_problem(LIMITS.max_event_bytes + 1, LIMITS)
    assert single is not None and single.field == "event"


def test_composed_and_decomposed_spellings_are_one_identity() -> None:
    composed, decomposed = "Jos\u00e9@Example.com", "Jose\u0301@example.COM"
    assert composed != decomposed and unicodedata.normalize("NFC", decomposed) != decomposed
    assert normalize_email(composed) == normalize_email(decomposed) == "jos\u00e9@example.com"
    assert normalize_anonymous_id("caf\u00e9-1") == normalize_anonymous_id("cafe\u0301-1") == "caf\u00e9-1"
    assert identity_of(event(email=None, anonymous_id="cafe\u0301-1")) == "caf\u00e9-1"


def lead_event(**fields: Any) -> LeadEventAccepted:
    values = {"event_id": "e-1", "type": "page_view", "occurred_at": NOW, "received_at": NOW, **fields}
    return LeadEventAccepted.model_validate(values)


def test_a_retry_is_one_message_and_another_body_under_the_same_id_is_another() -> None:
    first = lead_event(properties={"url": "a", "ref": "b"})
    retried = lead_event(
        properties={"ref": "b", "url": "a"},
        received_at=NOW + timedelta(minutes=5),
        occurred_at=NOW.astimezone(ZoneInfo("Europe/Paris")),
    )
    other = lead_event(properties={"url": "another"})
    assert first.message_id == retried.message_id
    assert first.body_digest() != other.body_digest()
    assert first.message_id != other.message_id and first.message_id.startswith("evt:e-1:")
