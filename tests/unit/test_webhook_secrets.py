"""Signing secrets: sealed at rest with the operator's key, and rotated with a grace period during
which every delivery carries a signature by the old and by the new secret."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pydantic
import pytest
from cryptography.fernet import Fernet

from shared.secret_box import SecretBox, SecretUnreadable, is_sealed
from shared.settings import DEV_SECRETS_KEY, Settings
from shared.signing import SIGNATURE_HEADER, verify
from shared.webhook_delivery import as_stored, signed_request, signing_secrets

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
BOX = SecretBox.from_key(Fernet.generate_key().decode())


def rotated(expires_at: datetime | None) -> SimpleNamespace:
    """A delivery of a subscription rotated from `whsec_old` to `whsec_new`."""
    return SimpleNamespace(
        delivery_id=1,
        event_type="handoff.created",
        payload=b'{"type":"handoff.created"}',
        secret=BOX.seal("whsec_new"),
        previous_secret=BOX.seal("whsec_old"),
        previous_secret_expires_at=expires_at,
    )


def test_a_sealed_secret_does_not_contain_the_secret_and_opens_with_the_key() -> None:
    sealed = BOX.seal("whsec_abc123")
    assert is_sealed(sealed) and "whsec_abc123" not in sealed
    assert BOX.open(sealed) == "whsec_abc123"
    with pytest.raises(SecretUnreadable):
        SecretBox.from_key(Fernet.generate_key().decode()).open(sealed)


def test_a_secret_stored_before_sealing_is_still_read() -> None:
    assert BOX.open("whsec_legacy") == "whsec_legacy"


def test_during_the_grace_period_both_secrets_verify() -> None:
    delivery = rotated(expires_at=NOW + timedelta(hours=1))
    secrets = signing_secrets(delivery, BOX, NOW)
    assert secrets == ["whsec_new", "whsec_old"]
    body, headers = signed_request(delivery, as_stored, secrets=secrets, timestamp=1_780_000_000)
    header = headers[SIGNATURE_HEADER]
    assert header.count("v1=") == 2
    assert verify("whsec_new", body, header, now=1_780_000_000)
    assert verify("whsec_old", body, header, now=1_780_000_000)


def test_after_the_grace_period_only_the_new_secret_verifies() -> None:
    delivery = rotated(expires_at=NOW - timedelta(seconds=1))
    secrets = signing_secrets(delivery, BOX, NOW)
    assert secrets == ["whsec_new"]
    body, headers = signed_request(delivery, as_stored, secrets=secrets, timestamp=1_780_000_000)
    assert verify("whsec_new", body, headers[SIGNATURE_HEADER], now=1_780_000_000)
    assert not verify("whsec_old", body, headers[SIGNATURE_HEADER], now=1_780_000_000)


def test_production_refuses_to_start_without_a_secrets_key() -> None:
    production = {"env": "production", "admin_key": "lf_" + "x" * 32, "privacy_subject_key": "s" * 32}
    with pytest.raises(pydantic.ValidationError, match="LEADFLOW_SECRETS_KEY"):
        Settings(**production)
    assert Settings(**production, secrets_key=Fernet.generate_key().decode()).env == "production"
    assert Settings(env="dev").secrets_key == DEV_SECRETS_KEY  # a dev default elsewhere


def test_a_secrets_key_that_is_not_a_fernet_key_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="Fernet key"):
        Settings(secrets_key="too-short")
