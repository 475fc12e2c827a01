"""What a handoff taught us: a cycle's sales decisions become a training label, or none.

Pure. Positive when sales took the lead on (SQL, SQO, a won opportunity: configurable);
negative when it was sent back for a reason that says "not a buyer" (`not_a_fit`,
`inaccurate_data`, `not_ready` by default); anything else (still undecided, only accepted,
sent back as a duplicate) teaches nothing and is left out. A reopen wipes the slate: only
decisions after the last reopen count. An exploration handoff's label carries the inverse
of the chance it had to be drawn, so explored leads stand for all the leads like them.

Features are taken as of the handoff (the MQL moment `handoff.created` carries, which
scoring records with the decisions; else the first decision), never later: how long sales took to decide
differs between good and bad leads and must not leak into what the model sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.event_types import EventType

SENT_BACK = frozenset({EventType.LEAD_REJECTED, EventType.LEAD_RETURNED})
STARTS = frozenset({EventType.HANDOFF_CREATED, EventType.HANDOFF_REOPENED})  # a handoff (again)


class LabelRules(BaseModel):
    """Which decisions make a positive or a negative example (config/learning.yaml `labels`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    positive: tuple[EventType, ...] = (
        EventType.SQL_QUALIFIED,
        EventType.SQO_CREATED,
        EventType.OPPORTUNITY_WON,
    )
    negative_reasons: tuple[str, ...] = Field(
        default=("not_a_fit", "inaccurate_data", "not_ready"), min_length=1
    )
    disqualified: Literal["negative", "excluded"] = "excluded"


@dataclass(frozen=True)
class SalesDecision:
    """One decision on a lead's handoff of one cycle, as scoring recorded it."""

    event_type: str
    at: datetime
    reason: str | None = None
    exploration: bool = False
    propensity: float | None = None


@dataclass(frozen=True)
class Label:
    positive: bool
    as_of: datetime  # features are taken as of the handoff
    weight: float
    exploration: bool


def label_of(decisions: Sequence[SalesDecision], rules: LabelRules) -> Label | None:
    """The label of one cycle's decisions, or None when they teach nothing."""
    ordered = sorted(decisions, key=lambda d: d.at)
    starts = [i for i, d in enumerate(ordered) if d.event_type in STARTS]
    since = ordered[starts[-1]] if starts else None
    counted = [d for d in (ordered[starts[-1] + 1 :] if starts else ordered) if d.event_type not in STARTS]
    if not counted:
        return None
    first = since or counted[0]
    exploring = any(d.exploration for d in ordered)
    propensity = next((d.propensity for d in ordered if d.propensity), None)
    weight = 1.0 / propensity if exploring and propensity else 1.0
    if any(d.event_type in rules.positive for d in counted):
        return Label(True, first.at, weight, exploring)
    last = counted[-1]
    negative = (last.event_type in SENT_BACK and last.reason in rules.negative_reasons) or (
        last.event_type == EventType.LEAD_DISQUALIFIED and rules.disqualified == "negative"
    )
    return Label(False, first.at, weight, exploring) if negative else None
