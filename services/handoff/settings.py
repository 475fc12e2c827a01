"""handoff's own settings, beside the platform's (shared/settings.py); also `LEADFLOW_*`."""

from __future__ import annotations

from pydantic import Field

from shared.settings import Settings


class HandoffSettings(Settings):
    sla_timer_poll_s: float = Field(default=1.0, gt=0)
    gauge_refresh_s: float = Field(
        default=15.0, gt=0, description="how often gauges counted in the database (handoffs by stage) refresh"
    )
