"""Who may see and act on which handoff.

A rep's key sees the rep's own handoffs and the queues of the teams the rep belongs to
(or manages); managers and integrations (keys without an owner) see every handoff. A
handoff out of sight does not exist for the caller: the API answers 404, so ids never leak.
Pure: the caller says who is asking.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.handoff.domain import HandoffConfig


@dataclass(frozen=True)
class Viewer:
    """Who is asking: the rep the key belongs to (None: an integration), and whether it manages."""

    owner: str | None
    manages: bool = False


def visible_owners(viewer: Viewer, config: HandoffConfig) -> tuple[str, ...] | None:
    """The owners whose handoffs the viewer sees; None: all of them."""
    if viewer.owner is None or viewer.manages:
        return None
    return (viewer.owner, *sorted(config.teams_of(viewer.owner)))


def can_see(viewer: Viewer, config: HandoffConfig, owner: str) -> bool:
    """Whether the viewer sees a handoff owned by `owner`."""
    owners = visible_owners(viewer, config)
    return owners is None or owner in owners
