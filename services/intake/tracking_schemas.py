"""The Segment HTTP Tracking API's message shapes, as Segment's and RudderStack's SDKs send them.

Pure (pydantic only). Lenient where the SDKs are: ids may be numbers, unknown fields are kept
(`integrations`, `channel`, ...), and times without a zone are UTC. A message that does not fit
is not refused with the request: it becomes a failed event (services/intake/tracking_mapping.py),
since an SDK drops a whole batch on a 4xx.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter

MessageType = Literal["identify", "track", "page", "screen", "group", "alias"]
# The path of each single-message route, and analytics.js's one-letter paths (`/v1/t`, ...).
ROUTE_TYPES: dict[str, MessageType] = {
    "identify": "identify",
    "track": "track",
    "page": "page",
    "screen": "screen",
    "group": "group",
    "alias": "alias",
    "i": "identify",
    "t": "track",
    "p": "page",
    "s": "screen",
    "g": "group",
    "a": "alias",
}
MAX_MESSAGE_BYTES = 32 * 1024  # Segment's limit for one message
MAX_BATCH_BYTES = 500 * 1024  # and for one batch request


def _id_text(value: Any) -> Any:
    """SDKs send ids as strings or numbers (`stringify_id`); both are the same id."""
    if isinstance(value, bool):
        return value  # refused by the str type below, not turned into "True"
    if isinstance(value, int | float):
        return str(value)
    return value


def _utc(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


Id = Annotated[str, BeforeValidator(_id_text), Field(min_length=1, max_length=512)]
Instant = Annotated[datetime, AfterValidator(_utc)]


_INSTANT: TypeAdapter[datetime] = TypeAdapter(Instant)


def instant_or_none(value: Any) -> datetime | None:
    """A batch's `sentAt`, or None when it is absent or not a time (the skew is then unknown)."""
    if value is None:
        return None
    try:
        return _INSTANT.validate_python(value)
    except ValueError:
        return None


class TrackingMessage(BaseModel):
    """One call: identify, track, page, screen, group or alias."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type: MessageType = Field(description="identify, track, page, screen, group or alias (set by the path)")
    messageId: Id | None = Field(default=None, description="The idempotency key (intake's `event_id`).")
    userId: Id | None = Field(default=None, description="The person's id (an email is taken as the email).")
    anonymousId: Id | None = Field(default=None, description="The browser's id; links anonymous history.")
    event: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        default=None, description="track: the event's name, mapped to a tracking-plan type."
    )
    name: Annotated[str, Field(max_length=200)] | None = Field(default=None, description="page/screen name")
    previousId: Id | None = Field(default=None, description="alias: the id the person had before.")
    groupId: Id | None = Field(default=None, description="group: the company's id.")
    timestamp: Instant | None = Field(default=None, description="When it happened, by the client's clock.")
    originalTimestamp: Instant | None = Field(default=None, description="Used when `timestamp` is absent.")
    sentAt: Instant | None = Field(
        default=None, description="When sent, by the same clock (skew correction)."
    )
    properties: dict[str, Any] = Field(
        default_factory=dict, description="track/page: the event's properties."
    )
    traits: dict[str, Any] = Field(
        default_factory=dict, description="identify/group: the person's or company's."
    )
    context: dict[str, Any] = Field(
        default_factory=dict, description="`page`, `campaign` (UTM) and `traits` are read from it."
    )


class TrackingBatch(BaseModel):
    """`POST /v1/batch`: what the SDKs send (at most 500 KB, each message at most 32 KB)."""

    model_config = ConfigDict(extra="allow")

    batch: list[dict[str, Any]] = Field(description="The messages; each one is a `TrackingMessage`.")
    sentAt: Instant | None = None
    context: dict[str, Any] = Field(default_factory=dict, description="Merged under each message's.")
    writeKey: str | None = Field(default=None, description="The write key, when no Authorization header.")


class TrackingAccepted(BaseModel):
    """Every message was recorded: `accepted` onto lead.events, `failed` in the failed-events view."""

    success: Literal[True] = True
    accepted: int
    failed: int
