"""What scoring can store, checked at the door: an event intake answers 202 for must not be
refused downstream, where its sender would never learn of it.

Pure. Postgres text and JSONB refuse NUL (U+0000) and lone surrogates anywhere, keys included
(orjson, which writes the envelope, refuses surrogates and integers beyond 64 bits, and turns
NaN and infinity into null); Python's datetimes cannot hold an instant before year 1 in UTC,
which arithmetic on an old `occurred_at` reaches. Sizes are bounded so that one event stays a
small Kafka record and a lead's traits stay a small row. The limits are intake's settings
(`LEADFLOW_EVENT_MAX_*`, see services/intake/settings.py).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import chain
from typing import TYPE_CHECKING, Any

from shared.field_errors import FieldError
from shared.request_rules import INT64_MAX, INT64_MIN, RULE_MESSAGES, printable, text_rule

if TYPE_CHECKING:
    from services.intake.domain import IntakeEvent

# One scan of all texts at once for the common case (nothing wrong); `text_rule` names the rule.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True)
class EventLimits:
    max_age: timedelta = timedelta(days=3650)
    max_custom_traits: int = 50
    max_properties: int = 100
    max_key_chars: int = 64
    max_value_chars: int = 2048
    max_event_bytes: int = 65_536


def limit_problems(
    event: IntakeEvent, limits: EventLimits, *, now: datetime, at: str = ""
) -> list[FieldError]:
    """Every way the event could not be stored downstream; `at` prefixes field names."""
    if _plainly_storable(event, limits, now=now):
        return []
    errors: list[FieldError] = []
    if event.occurred_at < now - limits.max_age:
        days = limits.max_age / timedelta(days=1)
        errors.append(
            FieldError(f"{at}occurred_at", "too_old", f"occurred_at is more than {days:g} days ago")
        )
    identities = (
        ("email", event.email),
        ("anonymous_id", event.anonymous_id),
        ("previous_id", event.previous_id),
    )
    for name, value in identities:
        if value is not None and (rule := text_rule(value)):
            errors.append(FieldError(f"{at}{name}", rule, RULE_MESSAGES[rule]))
    custom = event.traits.model_extra or {}
    if len(custom) > limits.max_custom_traits:
        errors.append(
            FieldError(f"{at}traits", "too_many_traits", f"at most {limits.max_custom_traits} custom traits")
        )
    if len(event.properties) > limits.max_properties:
        errors.append(
            FieldError(
                f"{at}properties", "too_many_properties", f"at most {limits.max_properties} properties"
            )
        )
    known = {name: value for name, value in event.traits if isinstance(value, str) and name not in custom}
    errors += _entries(f"{at}traits", known, limits, custom=False)
    errors += _entries(f"{at}traits", custom, limits, custom=True)
    errors += _entries(f"{at}properties", event.properties, limits, custom=True)
    return errors


def _plainly_storable(event: IntakeEvent, limits: EventLimits, *, now: datetime) -> bool:
    """The hot path: True when nothing is wrong, checked in few steps (one regex over all the
    text); False sends the event to the field-by-field search that names each problem."""
    custom = event.traits.__pydantic_extra__ or {}
    properties = event.properties
    if (
        event.occurred_at < now - limits.max_age
        or len(custom) > limits.max_custom_traits
        or len(properties) > limits.max_properties
        or max(map(len, chain(custom, properties)), default=0) > limits.max_key_chars
    ):
        return False
    texts = [event.email or "", event.anonymous_id or "", event.previous_id or "", *custom, *properties]
    texts += [value for value in event.traits.__dict__.values() if type(value) is str]
    for value in chain(custom.values(), properties.values()):
        kind = type(value)
        if kind is str:
            if len(value) > limits.max_value_chars:
                return False
            texts.append(value)
        elif kind is int:
            if not INT64_MIN <= value <= INT64_MAX:
                return False
        elif kind is float:
            if not math.isfinite(value):
                return False
        elif value is not None and kind is not bool:
            return False
    return _UNSTORABLE.search("".join(texts)) is None


def size_problem(size: int, limits: EventLimits, *, at: str = "") -> FieldError | None:
    """The event as published (its envelope, `size` bytes) must stay a small Kafka record."""
    if size <= limits.max_event_bytes:
        return None
    return FieldError(
        at.rstrip(".") or "event",
        "event_too_large",
        f"the event is {size} bytes as published; at most {limits.max_event_bytes}",
    )


def _entries(prefix: str, entries: dict[str, Any], limits: EventLimits, *, custom: bool) -> list[FieldError]:
    errors: list[FieldError] = []
    for key, value in entries.items():
        key_problem = _key_problem(key, limits) if custom else None
        value_problem = None if value is None else _value_problem(value, limits, custom=custom)
        if key_problem or value_problem:  # rare: the field name is only made then
            field = f"{prefix}.{_shown(key, limits)}"
            errors += [FieldError(field, *p) for p in (key_problem, value_problem) if p]
    return errors


def _key_problem(key: str, limits: EventLimits) -> tuple[str, str] | None:
    if rule := text_rule(key):
        return rule, f"the key: {RULE_MESSAGES[rule]}"
    if len(key) > limits.max_key_chars:
        return "key_too_long", f"a key has at most {limits.max_key_chars} characters"
    return None


def _value_problem(value: Any, limits: EventLimits, *, custom: bool) -> tuple[str, str] | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        if rule := text_rule(value):
            return rule, RULE_MESSAGES[rule]
        if custom and len(value) > limits.max_value_chars:
            return "string_too_long", f"a value has at most {limits.max_value_chars} characters"
        return None
    if isinstance(value, int):
        if INT64_MIN <= value <= INT64_MAX:
            return None
        return "int64", "an integer must fit in 64 bits (-2^63 to 2^63-1)"
    if isinstance(value, float):
        return None if math.isfinite(value) else ("finite_number", "NaN and infinity cannot be stored")
    return "not_scalar", "a custom trait is a string, number, boolean or null (no lists or objects)"


def _shown(key: str, limits: EventLimits) -> str:
    """A key as a field name: unstorable characters escaped, a long key cut."""
    shown = printable(key)
    return shown if len(shown) <= limits.max_key_chars else shown[: limits.max_key_chars] + "…"
