"""Who is away: out-of-office windows per rep, from the routing file or set over the API.

A rep away at the moment of a handoff gets none: round-robin passes over them, and the
handoffs that were theirs by name (the account owner, a rule's named owner) go to the
window's backup, else the rep's configured backup. Pure: the caller passes the instant
and the windows (`RoutingConfig.reps` and the store's API-set windows).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class AwayWindow:
    """One out-of-office window: away from `start` (inclusive) until `end` (exclusive)."""

    rep: str
    start: datetime
    end: datetime
    backup: str | None = None

    def covers(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


def away_window(windows: Iterable[AwayWindow], rep: str, moment: datetime) -> AwayWindow | None:
    """The window `rep` is away in at `moment`, if any (the one ending last when they overlap)."""
    covering = [w for w in windows if w.rep == rep and w.covers(moment)]
    return max(covering, key=lambda w: w.end) if covering else None
