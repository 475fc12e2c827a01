"""intake's own settings, beside the platform's (shared/settings.py); also `LEADFLOW_*`."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from services.intake.event_limits import EventLimits
from shared.settings import Settings


class IntakeSettings(Settings):
    max_batch_events: int = Field(default=500, ge=1)

    # What one event may hold (services/intake/event_limits.py); beyond them, a 422.
    event_max_age_days: float = Field(
        default=3650,
        gt=0,
        le=36_500,
        description="oldest occurred_at accepted, in days back from now (10 years); at most 100 years",
    )
    event_max_custom_traits: int = Field(default=50, ge=0, description="traits beyond the named ones")
    event_max_properties: int = Field(default=100, ge=0)
    event_max_key_chars: int = Field(default=64, ge=1, description="a custom trait's or a property's name")
    event_max_value_chars: int = Field(
        default=2048, ge=1, description="a custom trait's or a property's text value"
    )
    event_max_bytes: int = Field(
        default=65_536,
        ge=1024,
        le=900_000,
        description="one event as published on lead.events (its envelope, personal fields sealed and "
        "compressed: docs/privacy.md); below Kafka's 1 MB records",
    )

    @property
    def event_limits(self) -> EventLimits:
        return EventLimits(
            max_age=timedelta(days=self.event_max_age_days),
            max_custom_traits=self.event_max_custom_traits,
            max_properties=self.event_max_properties,
            max_key_chars=self.event_max_key_chars,
            max_value_chars=self.event_max_value_chars,
            max_event_bytes=self.event_max_bytes,
        )
