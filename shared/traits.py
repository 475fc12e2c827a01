"""Reading lead traits as they arrive in JSON, the same way in every service."""

from __future__ import annotations

from typing import Any


def employees(value: Any) -> int | None:
    """A company size: accept 1200 and "1200", nothing vaguer ("1k", "200-500")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None
