"""The rules every value a request carries obeys before it reaches Postgres, Kafka or orjson.

Pure (stdlib and pydantic), so the HTTP layer (`shared.http`), the event models and any
service's domain can apply the same rules:

- text refuses NUL (`no_nul`: Postgres cannot store it) and unpaired UTF-16 surrogates
  (`no_surrogates`: not encodable as UTF-8);
- integers stay in the range of the column or encoder they reach: `Int32` for Integer
  columns, `Int64` for BigInteger ones and for any integer in a JSON body (orjson, which
  writes JSONB and events, stops at 64 bits);
- JSON nests at most `MAX_JSON_DEPTH` levels (`max_depth`; orjson stops at 255);
- instants are representable in UTC (`Instant`), so converting one cannot overflow.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from shared.field_errors import FieldError

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_JSON_DEPTH = 32

Int32 = Annotated[int, Field(ge=INT32_MIN, le=INT32_MAX)]
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]

_SURROGATE = re.compile("[\ud800-\udfff]")


def text_rule(text: str) -> str | None:
    """The rule `text` breaks (`no_nul`, `no_surrogates`), or None."""
    if "\x00" in text:
        return "no_nul"
    if _SURROGATE.search(text):
        return "no_surrogates"
    return None


RULE_MESSAGES = {
    "no_nul": "must not contain NUL (U+0000)",
    "no_surrogates": "must not contain unpaired UTF-16 surrogates (U+D800-U+DFFF)",
    "int64": f"must be an integer from {INT64_MIN} to {INT64_MAX}",
    "max_depth": f"JSON must not nest deeper than {MAX_JSON_DEPTH} levels",
}


def text_errors(fields: Iterable[tuple[str, str]]) -> list[FieldError]:
    """An error for each (field, text) pair whose text breaks a text rule."""
    errors = []
    for name, text in fields:
        rule = text_rule(text)
        if rule is not None:
            errors.append(FieldError(printable(name), rule, RULE_MESSAGES[rule]))
    return errors


def printable(text: str) -> str:
    """`text` with NUL and surrogates escaped, so an error can name a field spelled with them."""
    if text_rule(text) is None:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _iso_8601(value: Any) -> Any:
    """Text must be ISO 8601 (pydantic would also read `0.5` as a Unix time)."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("must be an ISO 8601 instant, e.g. 2026-03-01T12:00:00Z") from None
    return value


def _instant_in_utc(value: datetime) -> datetime:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    try:
        return aware.astimezone(UTC)
    except OverflowError:
        raise ValueError("must be an instant between years 1 and 9999 in UTC") from None


Instant = Annotated[datetime, BeforeValidator(_iso_8601), AfterValidator(_instant_in_utc)]
"""An instant as a client sends it, in UTC; one without an offset is taken as UTC."""


# --- JSON bodies ---------------------------------------------------------------------------

_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_STRUCTURE = bytes.maketrans(b"{}", b"[]")  # one kind of bracket is enough to measure depth
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')
_DIGITS = bytes(ord("0") if chr(b).isdigit() and b < 128 else ord(" ") for b in range(256))
_INT64_DIGITS = b"0" * 19
_NUL_ESCAPE = b"\\u0000"
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def json_deeper_than(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text nests deeper than `limit` (brackets in strings do not count).

    Without parsing it, at C speed: after escapes and strings are dropped, each round of
    removing the innermost `[]` pairs lowers the depth by one.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    if b"\\" in body:
        body = _ESCAPE.sub(b"", body)
    structure = body.translate(_STRUCTURE, delete=_NOT_STRUCTURE)
    brackets = b"".join(structure.split(b'"')[::2])  # outside strings: every other piece
    for _ in range(limit):
        inner_removed = brackets.replace(b"[]", b"")
        if inner_removed == brackets:  # empty, or unbalanced: the parser tells what is wrong
            return False
        brackets = inner_removed
    return b"[]" in brackets


def may_break_content_rules(body: bytes) -> bool:
    """Whether the JSON text could hold a NUL, a surrogate or an integer beyond int64: the
    escape of NUL or of a surrogate, or a run of 19 digits (a digit string matches too; the
    walk of the parsed document decides). A body with none of them is never walked."""
    return (
        _NUL_ESCAPE in body
        or _SURROGATE_ESCAPE.search(body) is not None
        or _INT64_DIGITS in body.translate(_DIGITS)
    )


Location = tuple[str | int, ...]


def json_violations(value: Any, location: Location = ()) -> list[tuple[Location, str]]:
    """Every string (key or value) of a parsed JSON document that breaks a text rule, and
    every integer beyond int64: each as (where it is, the rule it breaks)."""
    found: list[tuple[Location, str]] = []
    stack: list[tuple[Any, Location]] = [(value, location)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if (rule := text_rule(key)) is not None:
                    found.append(((*where, printable(key)), rule))
                stack.append((child, (*where, printable(key))))
        elif isinstance(item, list):
            stack.extend((child, (*where, i)) for i, child in enumerate(item))
        elif isinstance(item, str):
            if (rule := text_rule(item)) is not None:
                found.append((where, rule))
        elif isinstance(item, int) and not isinstance(item, bool) and not INT64_MIN <= item <= INT64_MAX:
            found.append((where, "int64"))
    return sorted(found, key=lambda v: [str(p) for p in v[0]])
