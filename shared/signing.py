"""Webhook signatures and retry delays, as Stripe does them (every service's webhooks use them).

The `Leadflow-Signature` header reads `t=<unix seconds>,v1=<hex HMAC-SHA256>`, the HMAC taken
over `"<t>." + body` with the endpoint's secret. Signing the timestamp lets a receiver refuse a
replayed request; several `v1=` entries let a sender sign with the old and the new secret
while a receiver switches over.
"""

import hashlib
import hmac
import re
from collections.abc import Sequence
from datetime import timedelta

SIGNATURE_HEADER = "Leadflow-Signature"
SCHEME = "v1"

_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


def sign(secret: str, body: bytes, *, timestamp: int) -> str:
    """The header value for `body` sent at `timestamp` (unix seconds)."""
    return sign_with_each([secret], body, timestamp=timestamp)


def sign_with_each(secrets: Sequence[str], body: bytes, *, timestamp: int) -> str:
    """One header with a `v1=` per secret, for the time a secret is being rotated."""
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    if timestamp < 0:
        raise ValueError(f"timestamp must be unix seconds, got {timestamp}")
    signatures = ",".join(f"{SCHEME}={_digest(_key(secret), body, timestamp)}" for secret in secrets)
    return f"t={timestamp},{signatures}"


def verify(secret: str, body: bytes, header: str, *, now: int, tolerance_s: int = 300) -> bool:
    """Whether `header` signs `body` with `secret` at a time within `tolerance_s` of `now`.

    False for a malformed header, a timestamp too old or too far ahead (clock skew either way
    is allowed up to the tolerance), or no matching `v1=` entry. Entries of other schemes are
    ignored, so a later scheme can be added alongside.
    """
    key = _key(secret)
    parsed = _parse(header)
    if parsed is None:
        return False
    timestamp, candidates = parsed
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = _digest(key, body, timestamp)
    # Compare against every candidate so the time taken does not say which one matched.
    matches = [hmac.compare_digest(expected, candidate) for candidate in candidates]
    return any(matches)


def retry_delays(
    max_age: timedelta = timedelta(hours=24),
    first: timedelta = timedelta(seconds=10),
    factor: float = 2.0,
    cap: timedelta = timedelta(hours=1),
) -> list[timedelta]:
    """Waits between delivery attempts: `first`, growing by `factor` up to `cap`.

    The schedule stops before the waits add up to more than `max_age`, after which a delivery
    is given up. No jitter here: the sender adds it if many deliveries retry together.
    """
    if first <= timedelta(0) or cap <= timedelta(0):
        raise ValueError("first and cap must be positive")
    if factor < 1:
        raise ValueError(f"factor must be at least 1, got {factor}")
    delays: list[timedelta] = []
    delay, total = min(first, cap), timedelta(0)
    while total + delay <= max_age:
        delays.append(delay)
        total += delay
        delay = min(delay * factor, cap)
    return delays


def _key(secret: str) -> bytes:
    # An empty secret is a configuration mistake, not a bad request: fail loudly.
    if not secret:
        raise ValueError("the signing secret must not be empty")
    return secret.encode()


def _digest(key: bytes, body: bytes, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).hexdigest()


def _parse(header: str) -> tuple[int, list[str]] | None:
    """(timestamp, v1 signatures), or None when the header is not one we could have sent."""
    timestamps: list[str] = []
    candidates: list[str] = []
    for part in header.split(","):
        key, equals, value = part.strip().partition("=")
        if not equals:
            return None
        if key == "t":
            timestamps.append(value)
        elif key == SCHEME:
            candidates.append(value.lower())
    if len(timestamps) != 1 or not timestamps[0].isascii() or not timestamps[0].isdigit() or not candidates:
        return None
    # compare_digest refuses non-ASCII text, and a wrong length can never match anyway.
    if not all(_HEX_DIGEST.fullmatch(candidate) for candidate in candidates):
        return None
    return int(timestamps[0]), candidates
