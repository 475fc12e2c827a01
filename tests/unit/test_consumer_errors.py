"""How the consumer tells a bad message from an outage, and what it says about it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError

from shared.consumer import describe, is_transient
from shared.envelope import Envelope


def test_a_dead_letter_reason_never_repeats_the_message_content() -> None:
    with pytest.raises(ValidationError) as caught:
        Envelope.from_bytes(b'{"id": 1, "data": {"email": "ada@northwind.example"}}')
    reason = describe(caught.value)
    assert "ada@northwind.example" not in reason
    assert "type: Field required" in reason


def test_outages_are_retried_and_bad_messages_are_not() -> None:
    assert is_transient(OperationalError("SELECT 1", {}, ConnectionRefusedError()))
    assert is_transient(ConnectionResetError())
    assert not is_transient(ValueError("no model for this event"))
