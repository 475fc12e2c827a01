"""The rules of an erasure request: which services must confirm, and how far each has come. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

# Every service that holds rows about a lead confirms its erasure (scoring in the request's own
# transaction, the others over the bus); intake holds none: its key cache follows the vault
# within LEADFLOW_PRIVACY_ERASURES_POLL_S.
ERASING_SERVICES = ("scoring", "handoff", "feedback")


@dataclass(frozen=True)
class ServiceProgress:
    service: str
    state: str  # pending | done
    leads_confirmed: int
    leads: int
    done_at: datetime | None


def progress(
    lead_ids: Sequence[str], confirmations: Iterable[tuple[str, str, datetime]], *, requested_at: datetime
) -> list[ServiceProgress]:
    """Each service's progress from its confirmations (service, lead_id, at); with no lead to
    erase, every service is done when the request was made."""
    by_service: dict[str, dict[str, datetime]] = {s: {} for s in ERASING_SERVICES}
    for service, lead_id, at in confirmations:
        if service in by_service and lead_id in lead_ids:
            by_service[service][lead_id] = at
    answer = []
    for service, confirmed in by_service.items():
        done = len(confirmed) >= len(set(lead_ids))
        done_at = (max(confirmed.values()) if confirmed else requested_at) if done else None
        answer.append(
            ServiceProgress(service, "done" if done else "pending", len(confirmed), len(lead_ids), done_at)
        )
    return answer


def request_state(services: Sequence[ServiceProgress]) -> str:
    return "completed" if all(s.state == "done" for s in services) else "in_progress"
