"""Secrets kept encrypted at rest: webhook signing secrets are sealed with `LEADFLOW_SECRETS_KEY`.

Sealed values read `fernet:<token>` (Fernet: AES-128-CBC with an HMAC-SHA256, the key from
settings), so a dump of the database holds no secret that can sign a webhook. A value without
the prefix was stored in plain text before this existed: `open` still reads it, and
`is_sealed` lets the delivery loop find and seal such rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken

PREFIX = "fernet:"


class SecretUnreadable(Exception):
    """A sealed secret that this key cannot open (the key changed, or the value was altered)."""


@dataclass(frozen=True)
class SecretBox:
    fernet: Fernet

    @classmethod
    def from_key(cls, key: str) -> SecretBox:
        try:
            return cls(Fernet(key.encode()))
        except ValueError as exc:
            raise ValueError("LEADFLOW_SECRETS_KEY must be a Fernet key: urlsafe base64 of 32 bytes") from exc

    def seal(self, secret: str) -> str:
        return PREFIX + self.fernet.encrypt(secret.encode()).decode()

    def open(self, stored: str) -> str:
        if not is_sealed(stored):
            return stored  # written before secrets were sealed; the delivery loop seals it
        try:
            return self.fernet.decrypt(stored.removeprefix(PREFIX).encode()).decode()
        except InvalidToken as exc:
            raise SecretUnreadable("a webhook secret cannot be opened with LEADFLOW_SECRETS_KEY") from exc


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)
