"""Crypto-shredding: a person's fields open with their key, and read as erased without it."""

from __future__ import annotations

import pydantic
import pytest
from cryptography.fernet import Fernet

from shared.event_types import EventType
from shared.sealing import (
    SEALED,
    SUBJECT,
    SubjectKind,
    Unopenable,
    emptied,
    new_data_key,
    open_sealed,
    seal,
    subject_of,
)
from shared.settings import Settings

EVENT = {
    "event_id": "e1",
    "type": "form_submit",
    "email": "ada@example.com",
    "anonymous_id": "anon-1",
    "previous_id": "anon-0",
    "traits": {"first_name": "Ada", "last_name": "Lovelace", "phone": "+44 20 1234"},
    "properties": {"url": "/pricing?email=ada@example.com"},
}


def test_a_sealed_event_shows_nothing_personal_and_opens_with_its_key() -> None:
    key = new_data_key()
    sealed = seal(EventType.LEAD_EVENT, EVENT, subject="s1", key=key)
    assert "ada" not in str(sealed).lower() and "lovelace" not in str(sealed).lower()
    assert "anon-0" not in str(sealed)  # an alias's previous id is sealed like the anonymous id
    assert sealed["event_id"] == "e1" and sealed["type"] == "form_submit" and sealed[SUBJECT] == "s1"
    assert open_sealed(EventType.LEAD_EVENT, sealed, key=key) == EVENT


def test_another_key_or_another_subject_does_not_open_the_box() -> None:
    sealed = seal(EventType.LEAD_EVENT, EVENT, subject="s1", key=new_data_key())
    with pytest.raises(Unopenable):
        open_sealed(EventType.LEAD_EVENT, sealed, key=new_data_key())
    key = new_data_key()
    moved = {**seal(EventType.LEAD_EVENT, EVENT, subject="s1", key=key), SUBJECT: "s2"}
    with pytest.raises(Unopenable):
        open_sealed(EventType.LEAD_EVENT, moved, key=key)


def test_without_a_key_the_personal_fields_are_dropped_never_written_in_clear() -> None:
    sealed = seal(
        EventType.MQL_REACHED,
        {"email": "ada@example.com", "traits": {"x": 1}, "score": 70},
        subject="s",
        key=None,
    )
    assert sealed == {"email": None, "traits": {}, "score": 70, SUBJECT: "s", SEALED: None}


def test_an_erased_sales_decision_still_counts_with_its_note_emptied() -> None:
    decision = {"handoff_id": "h1", "note": "spoke to Ada Lovelace", SEALED: "v1.xyz", SUBJECT: "s"}
    assert emptied(EventType.LEAD_REJECTED, decision) == {"handoff_id": "h1", "note": None}


def test_subjects_are_keyed_hashes_that_differ_by_kind_and_secret() -> None:
    one = subject_of(b"secret-one-000000", SubjectKind.EMAIL, "ada@example.com")
    assert len(one) == 64 and "ada" not in one
    assert one == subject_of(b"secret-one-000000", SubjectKind.EMAIL, "ada@example.com")
    assert one != subject_of(b"secret-two-000000", SubjectKind.EMAIL, "ada@example.com")
    assert one != subject_of(b"secret-one-000000", SubjectKind.ANONYMOUS, "ada@example.com")


def test_production_refuses_the_dev_subject_key() -> None:
    production = {
        "env": "production",
        "admin_key": "lf_" + "x" * 32,
        "secrets_key": Fernet.generate_key().decode(),
    }
    with pytest.raises(pydantic.ValidationError, match="LEADFLOW_PRIVACY_SUBJECT_KEY"):
        Settings(**production)
    assert Settings(**production, privacy_subject_key="s" * 32).env == "production"
