"""Page cursors: the sort key of a page's last row, opaque to clients (base64 of a JSON array).

A cursor comes back from a client, so what it decodes to obeys the request rules like any
other value: its strings refuse NUL and surrogates, and each part has the type and range of
the column it is compared with. Anything else is `422 cursor`.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from shared.problems import FieldError, Problem, invalid
from shared.request_rules import text_rule

_NOT_OURS = "not a cursor returned by this API"


def encode_cursor(*parts: str | int | datetime) -> str:
    values = [p.isoformat() if isinstance(p, datetime) else p for p in parts]
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode()


def decode_cursor(cursor: str, shape: TypeAdapter[Any], *, field: str = "cursor") -> Any:
    """The cursor's parts validated as `shape` (e.g. `tuple[Int32, str]`), or a 422 problem."""
    try:
        parts = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        raise _invalid(field) from None
    if not isinstance(parts, list) or any(isinstance(p, str) and text_rule(p) for p in parts):
        raise _invalid(field)
    try:
        return shape.validate_python(parts)
    except ValidationError:
        raise _invalid(field) from None


def _invalid(field: str) -> Problem:
    return invalid([FieldError(field, "cursor", _NOT_OURS)])
