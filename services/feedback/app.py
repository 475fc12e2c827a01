"""feedback: return rates against the threshold, the funnel, rule attribution, alerts for ops,
and the dashboard. Routes live in `api` (JSON) and `dashboard` (the page)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from services.feedback import alert_webhooks, api, dashboard, store
from services.feedback.alerting import make_alert_timer
from services.feedback.domain import load_feedback_config
from services.feedback.handlers import make_handlers
from shared.events import LEAD_LIFECYCLE, OPS_ALERTS
from shared.http import create_app
from shared.runtime import ServiceRuntime, ServiceSpec
from shared.settings import Settings, get_settings


def create(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    config = load_feedback_config(settings.config_file("feedback.yaml"))
    spec = ServiceSpec(
        name="feedback",
        metadata=store.metadata,
        migrations=store.MIGRATIONS,
        subscriptions=[LEAD_LIFECYCLE, OPS_ALERTS],
        handlers={},
        batch_handlers={**make_handlers(config), **alert_webhooks.batch_handlers()},
        loops=[
            make_alert_timer(config),
            alert_webhooks.make_delivery_loop(
                first_retry_s=settings.webhook_first_retry_s,
                max_age=timedelta(hours=settings.webhook_max_age_h),
                poll_s=settings.webhook_poll_s,
            ),
        ],
    )
    app = create_app(
        ServiceRuntime(spec, settings),
        title="leadflow feedback",
        description="Return rates against the threshold, the funnel, rule attribution, alerts, dashboard.",
        routers=[api.router, dashboard.router, alert_webhooks.router],
    )
    app.state.feedback = config
    return app
