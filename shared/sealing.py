"""Crypto-shredding of personal fields in event payloads: who a subject is, and how fields are sealed.

A *subject* is a person as the vault knows them: the keyed hash (HMAC-SHA256 with
`LEADFLOW_PRIVACY_SUBJECT_KEY`) of a normalised email, an anonymous id or a lead id, so the
vault, message keys and the suppression list never hold an address. Each subject has one
random 256-bit data key (shared/vault.py); a payload's personal fields are moved into one
AES-GCM box under it, bound to the subject and the event type. Destroying the key makes every
copy of the box, on any topic, dead-letter topic, outbox row or replay, read as erased.

Pure: values in, values out (the key look-ups are the vault's).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import zlib
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.event_types import EventType

SEALED = "sealed"  # payload field holding the box
SUBJECT = "subject"  # payload field naming the subject whose key opens it
VERSION = "v1."
KEY_BYTES = 32
_NONCE_BYTES = 12


class SubjectKind(StrEnum):
    EMAIL = "email"
    ANONYMOUS = "anon"
    LEAD = "lead"


# The personal fields of each sealed event type, and the empty value each is left with on the wire.
_SALES_NOTES: Mapping[str, Any] = {"note": None}
SEALED_FIELDS: Mapping[str, Mapping[str, Any]] = {
    EventType.LEAD_EVENT: {
        "email": None,
        "anonymous_id": None,
        "previous_id": None,
        "traits": {},
        "properties": {},
    },
    EventType.MQL_REACHED: {"email": None, "traits": {}},
    EventType.SAL_ACCEPTED: _SALES_NOTES,
    EventType.LEAD_REJECTED: _SALES_NOTES,
    EventType.LEAD_RETURNED: _SALES_NOTES,
    EventType.SQL_QUALIFIED: {"note": None, "bant": {}},
    EventType.SQO_CREATED: {"note": None, "opportunity": {}},
    EventType.LEAD_DISQUALIFIED: _SALES_NOTES,
}
# An erased person's events of these types are skipped: handling them would recreate the person.
# The others still count (a funnel's figures do not change), with their personal fields empty.
SKIPPED_WHEN_ERASED = frozenset({EventType.LEAD_EVENT, EventType.MQL_REACHED})


class Unopenable(Exception):
    """A box this key does not open: altered on the way, or sealed for another subject."""


def subject_of(secret: bytes, kind: SubjectKind, value: str) -> str:
    """The keyed hash naming a person (`value` normalised already); hex, safe to log and to key by."""
    return hmac.new(secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def is_sealed(data: Mapping[str, Any]) -> bool:
    return bool(data.get(SEALED))


def seal(event_type: str, data: Mapping[str, Any], *, subject: str, key: bytes | None) -> dict[str, Any]:
    """`data` with its personal fields in a box under `key`; without a key (the subject is
    erased already) the fields are dropped, so nothing personal is ever written in clear."""
    fields = SEALED_FIELDS[event_type]
    personal = {name: data.get(name, empty) for name, empty in fields.items()}
    sealed = {**data, **fields, SUBJECT: subject}
    if key is None:
        sealed[SEALED] = None
        return sealed
    nonce = os.urandom(_NONCE_BYTES)
    # Compressed first: the box is base64 text, and JSON shrinks more than base64 grows it, so a
    # sealed event is usually no larger on the topic than the event in clear.
    plain = _compressed(orjson.dumps(personal))
    box = AESGCM(key).encrypt(nonce, plain, _bound_to(event_type, subject))
    sealed[SEALED] = VERSION + base64.urlsafe_b64encode(nonce + box).decode()
    return sealed


def open_sealed(event_type: str, data: Mapping[str, Any], *, key: bytes) -> dict[str, Any]:
    """`data` with its personal fields back in place, the box and subject removed."""
    token = str(data[SEALED])
    if not token.startswith(VERSION):
        raise Unopenable(f"unknown box version {token[:4]!r}")
    raw = base64.urlsafe_b64decode(token.removeprefix(VERSION).encode())
    subject = str(data[SUBJECT])
    try:
        plain = AESGCM(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _bound_to(event_type, subject))
    except InvalidTag as exc:
        raise Unopenable("the box does not open with its subject's key") from exc
    opened = {name: value for name, value in data.items() if name not in (SEALED, SUBJECT)}
    personal: dict[str, Any] = orjson.loads(zlib.decompress(plain))
    return opened | personal


def emptied(event_type: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` as an erased person's event reads: the personal fields empty, no box."""
    return {name: value for name, value in data.items() if name not in (SEALED, SUBJECT)} | dict(
        SEALED_FIELDS[event_type]
    )


def subject_in(data: Mapping[str, Any]) -> str | None:
    subject = data.get(SUBJECT)
    return str(subject) if subject else None


def _compressed(plain: bytes) -> bytes:
    """zlib at level 1 with the smallest hash table (memLevel 1): for a few hundred bytes the
    default table's set-up costs several times the compression itself (measured: ~30 us
    against ~10 us a call). Same zlib format and window, so `zlib.decompress` reads it as before."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, zlib.MAX_WBITS, 1)
    return compressor.compress(plain) + compressor.flush()


def _bound_to(event_type: str, subject: str) -> bytes:
    return f"{event_type}|{subject}".encode()
