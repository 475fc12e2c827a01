"""Where a lead stands in its cycle, and what moves it.

Pure: plain values in, a decision out. A lead in nurture becomes an MQL when its score
meets the model's MQL rule and any cool-off after its last recycle is over; sales
decisions move it along (SAL, SQL, SQO, disqualified) or recycle it to nurture for a new
cycle; its first touch (channel, campaign, source) is read from its earliest events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from services.scoring.domain import LeadEvent, LeadScore, may_requalify, meets_mql_rule, score_lead
from services.scoring.model import ScoringModel
from shared.event_types import EventType
from shared.events import AccountContext, EventData, LeadScored, Likelihood, MqlReached, ScoreContribution

NURTURE, MQL = "nurture", "mql"
RECENT_EVENTS_CARRIED = 20  # how many of its latest events an MQL shows the rep

# Where the lead stands after each sales decision (for its current cycle).
STAGE_AFTER: Mapping[str, str] = {
    EventType.SAL_ACCEPTED: "sal",
    EventType.SQL_QUALIFIED: "sql",
    EventType.SQO_CREATED: "sqo",
    EventType.LEAD_DISQUALIFIED: "disqualified",
    EventType.OPPORTUNITY_WON: "won",
    EventType.OPPORTUNITY_LOST: "lost",
}
# Decisions that send the lead back to marketing: a new cycle in nurture.
RECYCLING = frozenset({EventType.LEAD_REJECTED, EventType.LEAD_RETURNED})
# The lifecycle events scoring follows (a reopen undoes a return or disqualification).
FOLLOWED = (*STAGE_AFTER, *RECYCLING, EventType.HANDOFF_REOPENED)

Outcome = Literal["accepted", "sent_back"]


class StoredLead(Protocol):
    """What the rules read of a stored lead (a row of scoring's `leads`)."""

    @property
    def lead_id(self) -> str: ...
    @property
    def email(self) -> str | None: ...
    @property
    def stage(self) -> str: ...
    @property
    def cycle(self) -> int: ...
    @property
    def score(self) -> int: ...
    @property
    def grade(self) -> str: ...
    @property
    def disqualified(self) -> str | None: ...
    @property
    def model_version(self) -> str | None: ...
    @property
    def mql_at(self) -> datetime | None: ...
    @property
    def recycled_at(self) -> datetime | None: ...


def qualifies(
    model: ScoringModel, *, stage: str, recycled_at: datetime | None, score: LeadScore, at: datetime
) -> bool:
    """A lead becomes an MQL when in nurture, its score at `at` meets the MQL rule, and any
    cool-off after its last recycle is over by then."""
    return (
        stage == NURTURE
        and meets_mql_rule(model, score)
        and may_requalify(model, recycled_at=recycled_at, at=at)
    )


@dataclass(frozen=True)
class Activity:
    """What the lead row and an MQL announcement need of the lead's events: how many, where
    the lead came from, and the latest few. Read from the whole history or from its state."""

    events_count: int
    touch: FirstTouch
    recent: list[tuple[str, datetime]]  # (type, time), oldest first

    @classmethod
    def of(cls, history: Sequence[LeadEvent], traits: Mapping[str, Any]) -> Activity:
        return cls(len(history), first_touch(history, traits), recent_events(history))


@dataclass(frozen=True)
class Rescored:
    """A lead's new score, and whether it becomes an MQL with it."""

    lead: StoredLead
    traits: dict[str, Any]
    activity: Activity
    at: datetime  # the score is as of this moment: the lead's latest event
    result: LeadScore
    explanation: list[ScoreContribution]
    qualifies: bool
    # What the active predictive model says (services/scoring/learned_scoring.py sets both).
    likelihood: Likelihood | None = None
    propensity: float | None = None  # set: an exploration handoff, drawn with this chance
    account: AccountContext | None = None  # set by the account step (services/scoring/accounts)

    @property
    def stage(self) -> str:
        return MQL if self.qualifies else self.lead.stage

    @property
    def mql_at(self) -> datetime | None:
        return self.at if self.qualifies else self.lead.mql_at

    @property
    def score_changed(self) -> bool:
        r, lead = self.result, self.lead
        return (r.score, r.grade, r.disqualified) != (lead.score, lead.grade, lead.disqualified)

    @property
    def standing_changed(self) -> bool:
        """Whether score, grade, stage or model changed: what the score history records."""
        lead, r = self.lead, self.result
        return (lead.score, lead.grade, lead.stage, lead.model_version) != (
            r.score,
            r.grade,
            self.stage,
            r.model_version,
        )

    def events(self, *, scored: bool = True) -> list[EventData]:
        """`lead.scored` (if asked and the score changed), then `lead.mql_reached` (if it qualified)."""
        events: list[EventData] = []
        if scored and self.score_changed:
            events.append(scored_event(self.result, self.stage, self.explanation, self.likelihood))
        if self.qualifies:
            events.append(self.mql_event())
        return events

    def mql_event(self) -> MqlReached:
        touch = self.activity.touch
        r = self.result
        return MqlReached(
            cycle=self.lead.cycle,
            score=r.score,
            grade=r.grade,
            model_version=r.model_version,
            explanation=self.explanation,
            email=self.lead.email,
            traits=dict(self.traits),
            recent_events=self.activity.recent,
            channel=touch.channel,
            campaign=touch.campaign,
            source=touch.source,
            likelihood=self.likelihood,
            exploration=self.propensity is not None,
            propensity=self.propensity,
            account=self.account,
        )


def rescore(
    model: ScoringModel, lead: StoredLead, traits: dict[str, Any], history: Sequence[LeadEvent]
) -> Rescored:
    """Score a lead from its whole history, as of its latest event, and decide whether it qualifies."""
    at = max(e.occurred_at for e in history)
    result = score_lead(model, email=lead.email, traits=traits, events=history, at=at)
    return decide(model, lead, traits, result, Activity.of(history, traits), at=at)


def decide(
    model: ScoringModel,
    lead: StoredLead,
    traits: dict[str, Any],
    result: LeadScore,
    activity: Activity,
    *,
    at: datetime,
) -> Rescored:
    """The lead with its score as of `at` (however computed): explained, and whether it qualifies."""
    explanation = [
        ScoreContribution(rule=c.rule, kind=c.kind, points=c.points, detail=c.detail)
        for c in result.contributions
    ]
    qualified = qualifies(model, stage=lead.stage, recycled_at=lead.recycled_at, score=result, at=at)
    return Rescored(lead, traits, activity, at, result, explanation, qualified)


def qualifies_at_mqa_account(
    model: ScoringModel, *, stage: str, recycled_at: datetime | None, score: LeadScore, at: datetime
) -> bool:
    """At an MQA account a lead may qualify at the lower personal threshold of the model's
    `account.lead_mql_at_mqa` (grade, disqualifiers and cool-off as always)."""
    lowered = model.account.lead_mql_at_mqa if model.account is not None else None
    if lowered is None:
        return False
    lowered_rule = model.mql.model_copy(update={"min_score": min(lowered.min_score, model.mql.min_score)})
    return (
        stage == NURTURE
        and lowered_rule.is_met(score=score.score, grade=score.grade, disqualified=score.disqualified)
        and may_requalify(model, recycled_at=recycled_at, at=at)
    )


def mqa_contribution(model: ScoringModel, account_name: str) -> ScoreContribution:
    """The line of the lead's explanation that says the account made it an MQL."""
    lowered = model.account.lead_mql_at_mqa if model.account is not None else None
    threshold = min(lowered.min_score, model.mql.min_score) if lowered is not None else model.mql.min_score
    return ScoreContribution(
        rule="mql.account_mqa",
        kind="account",
        points=0,
        detail=(
            f"account '{account_name}' is an MQA: MQL at score {threshold} instead of {model.mql.min_score}"
        ),
    )


def stopped_qualifying(model: ScoringModel, rescored: Rescored) -> bool:
    """An MQL not yet decided whose new score no longer meets the rule (after a model change)."""
    return rescored.lead.stage == MQL and not meets_mql_rule(model, rescored.result)


def scored_event(
    result: LeadScore, stage: str, explanation: list[ScoreContribution], likelihood: Likelihood | None = None
) -> LeadScored:
    return LeadScored(
        score=result.score,
        fit_points=result.fit_points,
        grade=result.grade,
        stage=stage,
        model_version=result.model_version,
        disqualified=result.disqualified,
        explanation=explanation,
        likelihood=likelihood,
    )


# --- sales decisions -------------------------------------------------------------------------


@dataclass(frozen=True)
class StageChange:
    """What a sales decision does to the lead: new column values, and the cycle's outcome if any."""

    values: Mapping[str, Any]
    outcome: Outcome | None = None
    clears_outcome: bool = False  # a reopen: the cycle is undecided again


def follow(
    event_type: str, *, lead_stage: str, lead_cycle: int, decided_cycle: int, at: datetime
) -> StageChange | None:
    """The lead's change after a lifecycle event scoring follows (one of `FOLLOWED`)."""
    if event_type == EventType.HANDOFF_REOPENED:
        return after_reopen(lead_stage=lead_stage, lead_cycle=lead_cycle, reopened_cycle=decided_cycle, at=at)
    return after_sales_decision(event_type, lead_cycle=lead_cycle, decided_cycle=decided_cycle, at=at)


def after_sales_decision(
    event_type: str, *, lead_cycle: int, decided_cycle: int, at: datetime
) -> StageChange | None:
    """The lead's change after a sales decision about its cycle `decided_cycle`.

    A decision about an earlier cycle changes nothing now (None). A rejection or return
    recycles the lead: back to nurture, the next cycle, its MQL moment cleared and the
    recycle time kept for the cool-off.
    """
    if decided_cycle != lead_cycle:
        return None
    if event_type in RECYCLING:
        values = {"stage": NURTURE, "cycle": lead_cycle + 1, "mql_at": None, "recycled_at": at}
        return StageChange(values, outcome="sent_back")
    outcome: Outcome | None = "accepted" if event_type == EventType.SAL_ACCEPTED else None
    return StageChange({"stage": STAGE_AFTER[event_type]}, outcome=outcome)


def after_reopen(
    *, lead_stage: str, lead_cycle: int, reopened_cycle: int, at: datetime
) -> StageChange | None:
    """The lead's change when sales reopens its handoff of `reopened_cycle`: an MQL again.

    A returned lead was recycled to nurture in the next cycle: it goes back to the reopened
    cycle as an MQL from now, and its recycle (and so its cool-off) is undone. A disqualified
    one is an MQL again in the same cycle. A lead that moved on since (it requalified, or the
    event is about an older cycle) is left alone: handoff refuses to reopen a superseded
    handoff, so this only happens when the two cross in flight.
    """
    if lead_stage == NURTURE and lead_cycle == reopened_cycle + 1:
        values = {"stage": MQL, "cycle": reopened_cycle, "mql_at": at, "recycled_at": None}
        return StageChange(values, clears_outcome=True)
    if lead_stage == STAGE_AFTER[EventType.LEAD_DISQUALIFIED] and lead_cycle == reopened_cycle:
        return StageChange({"stage": MQL}, clears_outcome=True)
    return None


# --- attribution ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FirstTouch:
    """Where the lead came from: the first value seen, in time order, of each."""

    channel: str | None
    campaign: str | None
    source: str | None


def first_touch(history: Sequence[LeadEvent], traits: Mapping[str, Any]) -> FirstTouch:
    """Channel from the earliest event's `channel`/`utm_medium`, else the traits; campaign and
    source from the earliest event that names them."""
    ordered = sorted(history, key=lambda e: e.occurred_at)
    return FirstTouch(
        channel=_first_property(ordered, "channel", "utm_medium") or traits.get("channel"),
        campaign=_first_property(ordered, "campaign", "utm_campaign"),
        source=_first_property(ordered, "source", "utm_source"),
    )


def recent_events(history: Sequence[LeadEvent]) -> list[tuple[str, datetime]]:
    """The lead's latest events, oldest first, as (type, time)."""
    latest = sorted(history, key=lambda e: e.occurred_at)[-RECENT_EVENTS_CARRIED:]
    return [(e.event_type, e.occurred_at) for e in latest]


def _first_property(ordered: Sequence[LeadEvent], *names: str) -> str | None:
    for event in ordered:
        for name in names:
            value = event.properties.get(name)
            if value:
                return str(value)
    return None


# --- retention ---------------------------------------------------------------------------------


def event_types_kept_forever(model: ScoringModel) -> list[str]:
    """Event types retention never prunes: those a disqualifier of the model tests (an
    `unsubscribe`), so a lead whose older events went stays disqualified when it returns."""
    return sorted({str(rule.event) for rule in model.undesirables if rule.disqualify and rule.event})
