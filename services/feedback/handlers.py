"""feedback's consumer: lifecycle events become facts, and facts raise and resolve alerts.

Facts are applied by `projection.project` (the same code a rebuild replays). The
return-rate alerts are evaluated once per consumed batch that changed a decision,
not once per message, and on a timer (`alerting.make_alert_timer`), so decisions
ageing out of the window resolve them too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.feedback.alerting import alert_breaches, evaluate_return_rates
from services.feedback.domain import FeedbackConfig
from services.feedback.projection import PROJECTED, project
from shared.consumer import BatchHandler
from shared.envelope import Envelope, utcnow
from shared.events import ErasureConfirmed, ErasureRequested
from shared.unit_of_work import UnitOfWork


def make_handlers(config: FeedbackConfig) -> Mapping[str, BatchHandler]:
    async def on_lifecycle(uow: UnitOfWork, items: list[tuple[Envelope, Any]]) -> None:
        projected = await project(uow.conn, items)
        confirm_erasures(uow, items)
        await alert_breaches(uow, projected, now=utcnow())
        if projected.decisions:
            uow.once_before_commit(
                "evaluate_return_rates", lambda u: evaluate_return_rates(u, config, now=utcnow())
            )

    return {event_type: on_lifecycle for event_type in PROJECTED}


def confirm_erasures(uow: UnitOfWork, items: list[tuple[Envelope, Any]]) -> None:
    """Tell scoring this lead's facts no longer name anyone (the projection just anonymised them)."""
    for envelope, event in items:
        if isinstance(event, ErasureRequested):
            uow.emit(
                ErasureConfirmed(request_id=event.request_id, service="feedback"), lead_id=envelope.lead_id
            )
