"""How a lead's email is written once it is an identity: the key intake partitions on and
scoring looks leads up by, so both services must write it the same way. Stdlib only."""

from __future__ import annotations


def normalize_email(email: str) -> str:
    return email.strip().lower()
