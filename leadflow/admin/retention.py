"""`leadflow retention run`: one run of the services' retention job, by hand.

The same run each service does every LEADFLOW_RETENTION_INTERVAL_S (`shared/retention.py`),
under the same advisory locks, so it is safe while the services run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from shared.envelope import utcnow
from shared.retention import Pruned, PruneTarget, inbox_target, prune_service
from shared.settings import ServiceName, Settings
from shared.topics import Topics

# The services that keep tables (intake keeps none).
RETAINING: tuple[ServiceName, ...] = ("scoring", "handoff", "feedback")


@dataclass(frozen=True)
class Retained:
    """What one service's retention covers: its tables, and the topics its inbox deduplicates."""

    targets: list[PruneTarget]
    subscriptions: list[str]


def retained_by(settings: Settings, service: ServiceName) -> Retained:
    if service == "scoring":
        from services.scoring import app as scoring_app
        from services.scoring import retention as scoring_retention
        from services.scoring import store as scoring_store
        from services.scoring.config_files import load_model

        model = load_model(settings.config_file("scoring-model.yaml"))
        own = [*scoring_retention.targets(model), inbox_target(scoring_store.inbox)]
        return Retained(own, scoring_app.SUBSCRIPTIONS)
    if service == "handoff":
        from services.handoff import app as handoff_app
        from services.handoff import retention as handoff_retention
        from services.handoff import store as handoff_store

        return Retained(
            [*handoff_retention.TARGETS, inbox_target(handoff_store.inbox)], handoff_app.SUBSCRIPTIONS
        )
    if service == "feedback":
        from services.feedback import app as feedback_app
        from services.feedback import retention as feedback_retention
        from services.feedback import store as feedback_store

        own = [*feedback_retention.TARGETS, inbox_target(feedback_store.inbox)]
        return Retained(own, feedback_app.SUBSCRIPTIONS)
    raise ValueError(f"{service} keeps no tables: choose among {', '.join(RETAINING)}")


async def run_by_hand(
    settings: Settings, services: Sequence[ServiceName], *, dry_run: bool, now: datetime | None = None
) -> dict[ServiceName, list[Pruned]]:
    """Each service's run as of `now` (default: now); a dry run counts what would go."""
    topics = Topics(settings.topic_prefix)
    done: dict[ServiceName, list[Pruned]] = {}
    for service in services:
        retained = retained_by(settings, service)
        done[service] = await prune_service(
            settings,
            service=service,
            targets=retained.targets,
            topics=[topics.name(t) for t in retained.subscriptions],
            now=now or utcnow(),
            dry_run=dry_run,
        )
    return done


def describe(service: str, pruned: Pruned, *, dry_run: bool) -> str:
    """One line of the command's report."""
    head = f"{service:<9} {pruned.target.kind.value:<19} {pruned.target.name:<30}"
    if pruned.cutoff is None:
        return f"{head} kept forever"
    verb = "would go" if dry_run else "went"
    note = f" ({pruned.note})" if pruned.note else ""
    return f"{head} before {pruned.cutoff:%Y-%m-%d %H:%M} UTC: {pruned.rows} rows {verb}{note}"
