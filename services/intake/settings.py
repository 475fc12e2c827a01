"""intake's own settings, beside the platform's (shared/settings.py); also `LEADFLOW_*`."""

from __future__ import annotations

from pydantic import Field

from shared.settings import Settings


class IntakeSettings(Settings):
    max_batch_events: int = Field(default=500, ge=1)
