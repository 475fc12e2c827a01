"""The one envelope every Kafka message of leadflow travels in.

`id` is the deduplication key: consumers record it in their inbox, so a message
delivered twice is applied once. `data` is the type's own payload, validated
against the versioned model registered for `type` (see `shared.events`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field


def utcnow() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Unique id of this message; the deduplication key.")
    type: str = Field(description="Event type, e.g. `lead.mql_reached`.")
    schema_version: int = Field(default=1, ge=1, description="Version of the `data` model.")
    occurred_at: datetime = Field(description="When it happened (UTC).")
    produced_at: datetime = Field(default_factory=utcnow, description="When it was produced.")
    source: str = Field(description="Service or client that produced it.")
    lead_id: str | None = Field(default=None, description="The lead this is about, once known.")
    identity: str | None = Field(
        default=None, description="Normalised email, else anonymous id (intake events)."
    )
    trace_id: str = Field(description="Carried from the first HTTP request through every service.")
    data: dict[str, Any] = Field(description="The type's own payload.")

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, raw: bytes) -> Envelope:
        return cls.model_validate_json(raw)


def new_message_id() -> str:
    return str(uuid.uuid4())
