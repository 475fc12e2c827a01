"""The rules every request value obeys before it reaches Postgres, Kafka or orjson
(`shared.request_rules`), the bounded durations (`shared.rates.parse_window`) and the
reach of a feedback series."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from services.feedback.domain import MAX_SERIES_REACH, series_reach
from shared.rates import parse_window
from shared.request_rules import (
    INT32_MAX,
    INT64_MAX,
    INT64_MIN,
    MAX_JSON_DEPTH,
    Instant,
    Int32,
    json_deeper_than,
    json_violations,
    may_break_content_rules,
    printable,
    text_errors,
    text_rule,
)


def nested(depth: int) -> bytes:
    return ('{"a": ' * depth + "1" + "}" * depth).encode()


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("plain", None),
        ("a\x00b", "no_nul"),
        ("\ud800", "no_surrogates"),
        ("x\udfff", "no_surrogates"),
        ("😀", None),
    ],
)
def test_text_refuses_nul_and_unpaired_surrogates(text: str, rule: str | None) -> None:
    assert text_rule(text) == rule


def test_errors_name_a_field_spelled_with_what_they_refuse_printably() -> None:
    [error] = text_errors([("na\x00me", "\x00")])
    assert (error.field, error.rule) == ("na\\x00me", "no_nul")
    assert printable("\ud800").encode() == b"\\ud800"


@pytest.mark.parametrize("depth", [1, MAX_JSON_DEPTH])
def test_json_up_to_the_depth_limit_passes(depth: int) -> None:
    assert not json_deeper_than(nested(depth))
    assert not json_deeper_than(b"[" * depth + b"]" * depth)


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 255, 1000, 200_000])
def test_json_past_the_depth_limit_is_caught_without_parsing(depth: int) -> None:
    assert json_deeper_than(nested(depth))
    assert json_deeper_than(b"[" * depth + b"]" * depth)


def test_brackets_inside_strings_and_escaped_quotes_are_not_depth() -> None:
    assert not json_deeper_than(json.dumps({"a": "[" * 100, "b": '"' + "{" * 100}).encode())
    assert not json_deeper_than(json.dumps(["]" * 50, [[["x"]]]]).encode())
    hidden = json.dumps(["\\" + "]" * 40, json.loads(nested(40)), "\\"]).encode()
    assert json_deeper_than(hidden)


def test_many_shallow_siblings_are_not_depth() -> None:
    assert not json_deeper_than(json.dumps([{"a": [1]} for _ in range(5000)]).encode())


@given(st.recursive(st.integers() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)))
def test_depth_scan_agrees_with_the_parsed_document(document: object) -> None:
    def depth(value: object) -> int:
        if isinstance(value, dict):
            return 1 + max(map(depth, value.values()), default=0)
        if isinstance(value, list):
            return 1 + max(map(depth, value), default=0)
        return 0

    text = json.dumps(document).encode()
    for limit in (1, 2, 3):
        assert json_deeper_than(text, limit) == (depth(document) > limit)


def test_the_content_scan_flags_what_the_walk_may_refuse() -> None:
    assert may_break_content_rules(json.dumps({"a": "\x00"}).encode())
    assert may_break_content_rules(json.dumps({"a": "\ud800"}).encode())
    assert may_break_content_rules(json.dumps({"a": 2**64}).encode())
    assert not may_break_content_rules(orjson.dumps({"a": "é😀", "n": 2**53, "f": 1.5}))


def test_the_walk_names_each_broken_value_by_its_path() -> None:
    document = {"ok": 1, "a": "x\x00", "b": [1, 2**64, "\ud800"], "\x00k": {"c": INT64_MIN - 1}, "t": True}
    assert json_violations(document) == [
        (("\\x00k",), "no_nul"),
        (("\\x00k", "c"), "int64"),
        (("a",), "no_nul"),
        (("b", 1), "int64"),
        (("b", 2), "no_surrogates"),
    ]
    assert json_violations({"edge": [INT64_MIN, INT64_MAX]}) == []


def test_int32_is_the_range_of_an_integer_column() -> None:
    adapter = TypeAdapter(Int32)
    assert adapter.validate_python(INT32_MAX) == INT32_MAX
    with pytest.raises(ValidationError):
        adapter.validate_python(INT32_MAX + 1)


def test_instants_are_in_utc_and_refused_when_utc_cannot_hold_them() -> None:
    adapter = TypeAdapter(Instant)
    assert adapter.validate_python("2026-03-01T12:00:00+02:00") == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert adapter.validate_python("2026-03-01T12:00:00").tzinfo is UTC
    for beyond in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"):
        with pytest.raises(ValidationError):
            adapter.validate_python(beyond)


@pytest.mark.parametrize("text", ["99999999999d", "3651d", "87601h", "522w", "9" * 5000 + "d"])
def test_windows_past_3650_days_are_refused_before_any_arithmetic(text: str) -> None:
    with pytest.raises(ValueError, match="maximum of 3650 days"):
        parse_window(text)


@pytest.mark.parametrize(("text", "days"), [("3650d", 3650), ("87600h", 3650), ("521w", 3647), ("007d", 7)])
def test_windows_up_to_3650_days_parse(text: str, days: int) -> None:
    assert parse_window(text) == timedelta(days=days)


def test_a_series_reaches_back_its_window_and_every_step_but_the_last() -> None:
    reach = series_reach(length=timedelta(days=30), step=timedelta(days=1), points=30)
    assert reach == timedelta(days=59)
    widest = series_reach(length=timedelta(days=3650), step=timedelta(days=3650), points=400)
    assert widest > MAX_SERIES_REACH  # the route refuses it: `now - widest` is before year 1
