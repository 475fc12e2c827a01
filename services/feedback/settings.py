"""feedback's own settings, beside the platform's (shared/settings.py); also `LEADFLOW_*`."""

from __future__ import annotations

from pydantic import Field

from shared.settings import Settings


class FeedbackSettings(Settings):
    alert_eval_interval_s: float = Field(default=10.0, gt=0)
