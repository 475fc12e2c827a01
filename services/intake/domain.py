"""Intake's rules: the shape of an event, the tracking plan, and identity.

Pure: the route validates the JSON shape with `IntakeEvent`, then
`check_against_plan` applies the rules that depend on configuration and time.
`config_files.load_tracking_plan` reads the plan's file.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from shared.config_errors import PydanticWordedConfigError
from shared.events import Traits
from shared.field_errors import FieldError
from shared.identities import normalize_anonymous_id, normalize_email

MAX_CLOCK_SKEW = timedelta(minutes=5)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

PropertyValue = str | int | float | bool | None
Identifier = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]


class IntakeEvent(BaseModel):
    """One event as a form or web backend sends it."""

    model_config = ConfigDict(extra="forbid")

    event_id: (
        Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@-]+$")] | None
    ) = Field(
        default=None,
        description="Idempotency key; the same id sent twice is processed once. Assigned when absent.",
    )
    type: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="A type from the tracking plan, e.g. `form_submit`.", examples=["form_submit"]
    )
    occurred_at: AwareDatetime = Field(description="When it happened, RFC 3339 with a timezone.")
    email: Annotated[str, StringConstraints(strip_whitespace=True, max_length=254)] | None = None
    anonymous_id: Identifier | None = None
    previous_id: Identifier | None = Field(
        default=None,
        description="An alias: another anonymous id the same person had (Segment's `previousId`). "
        "Its lead and this event's become one, unless both are known by different emails.",
    )
    traits: Traits = Field(default_factory=Traits)
    properties: dict[str, PropertyValue] = Field(
        default_factory=dict,
        description="Scalars; count, key and value lengths bounded by intake's settings (100, 64, 2048).",
    )


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[IntakeEvent] = Field(min_length=1, description="Up to the configured maximum (500).")


class EventTypeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = ""
    required_properties: list[str] = Field(default_factory=list)


class TrackingPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str
    types: dict[str, EventTypeSpec]


class TrackingPlanError(PydanticWordedConfigError):
    """The tracking plan file cannot be used; each problem names its line."""

    what = "tracking plan"


def identity_of(event: IntakeEvent) -> str:
    """The partition key: normalised email, else the normalised anonymous id."""
    if event.email:
        return normalize_email(event.email)
    assert event.anonymous_id is not None  # guaranteed by check_against_plan
    return normalize_anonymous_id(event.anonymous_id)


def check_against_plan(
    event: IntakeEvent, plan: TrackingPlan, *, now: datetime, at: str = ""
) -> list[FieldError]:
    """Every rule the event breaks; `at` prefixes field names (e.g. `events.3.`)."""
    errors: list[FieldError] = []
    if not event.email and not event.anonymous_id:
        errors.append(
            FieldError(f"{at}email", "identity_required", "an event needs an email or an anonymous_id")
        )
    if event.email and not _EMAIL.match(event.email):
        errors.append(FieldError(f"{at}email", "email_format", "not an email address"))
    if event.occurred_at > now + MAX_CLOCK_SKEW:
        errors.append(FieldError(f"{at}occurred_at", "not_in_future", "occurred_at is in the future"))
    spec = plan.types.get(event.type)
    if spec is None:
        errors.append(
            FieldError(
                f"{at}type", "tracking_plan_type", f"unknown event type {event.type!r}; see the tracking plan"
            )
        )
        return errors
    for name in spec.required_properties:
        if event.properties.get(name) in (None, ""):
            errors.append(
                FieldError(
                    f"{at}properties.{name}", "required_by_tracking_plan", f"{event.type} requires {name}"
                )
            )
    return errors
