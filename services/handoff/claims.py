"""Claiming a handoff from a queue: a rep takes it; the first claim wins.

Pure: whether a claim makes sense for the handoff as it is. The store applies it with a
conditional update (still in that queue, still an MQL) so that of two claims at once one
wins and the other is refused like a claim that came late.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.handoff.domain import Handoff, HandoffConfig, Stage
from shared.events import AccountContext, HandoffClaimed


class ClaimRefused(Exception):
    """The handoff cannot be claimed by this rep now; `rule` names why, for the problem answer."""

    def __init__(self, rule: str, message: str) -> None:
        self.rule = rule
        super().__init__(message)


@dataclass(frozen=True)
class Claimed:
    queue: str
    note: str
    event: HandoffClaimed


def claim(
    handoff: Handoff, rep: str, config: HandoffConfig, *, account: AccountContext | None
) -> Claimed | None:
    """The claim of `handoff` by `rep`; None when it already is theirs (a retried claim)."""
    if handoff.owner == rep:
        return None
    if not config.routing.is_queue(handoff.owner):
        raise ClaimRefused("already_claimed", "the handoff is no longer in a queue: another rep has it")
    if handoff.stage is not Stage.MQL:
        raise ClaimRefused(
            "not_open", f"only an MQL waiting in a queue can be claimed; it is {handoff.stage}"
        )
    event = HandoffClaimed(
        handoff_id=handoff.handoff_id,
        from_owner=handoff.owner,
        to_owner=rep,
        team=handoff.team,
        account=account,
    )
    return Claimed(queue=handoff.owner, note=f"{handoff.owner} → {rep}", event=event)
