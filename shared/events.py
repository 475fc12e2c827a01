"""Typed payloads of every event in the product contract, and their topics.

Each payload class names its `event_type`, `topic` and `schema_version`; the
registry below is what consumers validate against and what the JSON Schema and
AsyncAPI documents are generated from.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from shared.envelope import Envelope, new_message_id, utcnow
from shared.event_types import EventType
from shared.logging import current_trace_id, new_trace_id

LEAD_EVENTS = "lead.events"
LEAD_LIFECYCLE = "lead.lifecycle"
OPS_ALERTS = "ops.alerts"
# Tracking API messages intake accepted but could not map (feedback's failed-events view).
FAILED_EVENTS = "lead.events.failed"
BASE_TOPICS = (LEAD_EVENTS, LEAD_LIFECYCLE, OPS_ALERTS, FAILED_EVENTS)


class EventData(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event_type: ClassVar[EventType]
    topic: ClassVar[str]
    schema_version: ClassVar[int] = 1


# What a retry may change without being another body: when it came, and how it was sealed.
_NOT_THE_BODY = frozenset({"received_at", "sealed", "subject"})


# --- lead.events ---------------------------------------------------------------


class Traits(BaseModel):
    """The named traits, plus custom ones: scalars, bounded in number and size by intake
    (services/intake/event_limits.py)."""

    model_config = ConfigDict(extra="allow")

    first_name: str | None = Field(default=None, max_length=200)
    last_name: str | None = Field(default=None, max_length=200)
    title: str | None = Field(default=None, max_length=200)
    company: str | None = Field(default=None, max_length=200)
    company_domain: str | None = Field(default=None, max_length=253)
    company_size: int | None = Field(default=None, ge=0, le=10_000_000)
    industry: str | None = Field(default=None, max_length=200)
    country: str | None = Field(default=None, max_length=2, min_length=2)
    phone: str | None = Field(default=None, max_length=50)
    department: str | None = Field(default=None, max_length=200)
    channel: str | None = Field(default=None, max_length=100)
    group_id: str | None = Field(
        default=None,
        max_length=128,
        description="The company's id in the sender's tracking (Segment's `groupId`): an account whose "
        "external id it is is the lead's account, ahead of domains and names.",
    )


class LeadEventAccepted(EventData):
    """An intake event that passed the tracking plan."""

    event_type: ClassVar[EventType] = EventType.LEAD_EVENT
    topic: ClassVar[str] = LEAD_EVENTS

    event_id: str
    type: str = Field(description="Tracking-plan event type, e.g. `form_submit`.")
    occurred_at: datetime
    received_at: datetime
    email: str | None = None
    anonymous_id: str | None = None
    previous_id: str | None = Field(
        default=None,
        description="An alias: another anonymous id of the same person, whose lead becomes this one's.",
    )
    traits: dict[str, Any] = Field(default_factory=dict)
    properties: dict[str, Any] = Field(default_factory=dict)
    sealed: str | None = Field(
        default=None,
        description="The personal fields, sealed with the subject's data key (AES-GCM; docs/privacy.md). "
        "Consumers see them opened, or skip the event once the person is erased.",
    )
    subject: str | None = Field(default=None, description="Keyed hash naming whose key seals `sealed`.")

    def body_digest(self) -> str:
        """What the sender said, hashed: the same for a retry of the event (whenever it is received,
        whatever offset its `occurred_at` was written in), different for another body under the
        same `event_id`."""
        body = {name: value for name, value in self.__dict__.items() if name not in _NOT_THE_BODY}
        if body.get("previous_id") is None:  # events without an alias digest as they did before it
            body.pop("previous_id", None)
        if self.occurred_at.tzinfo is not None:
            body["occurred_at"] = self.occurred_at.astimezone(UTC)
        return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()

    @property
    def message_id(self) -> str:
        """The envelope's id: a retry is one message (the inbox drops it), while a reused
        `event_id` with another body gets through to scoring, which records the conflict."""
        return f"evt:{self.event_id}:{self.body_digest()[:16]}"


class TrackingMessageFailed(EventData):
    """A Tracking API message intake accepted (an SDK drops a whole batch on a 4xx) but did not
    put on lead.events: it maps to no tracking-plan type or breaks the contract. Its sample has
    every identity, trait and email-like text redacted; nothing here names a person."""

    event_type: ClassVar[EventType] = EventType.TRACKING_MESSAGE_FAILED
    topic: ClassVar[str] = FAILED_EVENTS

    reason: str = Field(description="The rule the message broke, e.g. `unmapped_event`, `identity_required`.")
    field: str = Field(description="Where in the message, e.g. `event`, `userId`, `properties.form_id`.")
    detail: str
    message_type: str | None = Field(default=None, description="identify, track, page, screen, group, alias")
    event: str | None = Field(default=None, description="A track call's event name.")
    received_at: datetime
    sample: dict[str, Any] = Field(default_factory=dict, description="The message, redacted.")


# --- lead.lifecycle: scoring ---------------------------------------------------


class ScoreContribution(BaseModel):
    model_config = ConfigDict(frozen=True)

    rule: str
    kind: str
    points: float
    detail: str


class LikelihoodFactor(BaseModel):
    """One of the features that moved a lead's likelihood most, in likelihood points."""

    model_config = ConfigDict(frozen=True)

    feature: str = Field(description="e.g. `section:pricing`, `fit:title.vp`, `channel=referral`.")
    value: float | None = Field(description="The lead's value of it (null: unknown).")
    points: float = Field(description="Likelihood points it adds (negative: takes away).")


class Likelihood(BaseModel):
    """The active predictive model's estimate that sales will take the lead on (0–100)."""

    model_config = ConfigDict(frozen=True)

    value: int = Field(ge=0, le=100)
    model_version: str
    factors: list[LikelihoodFactor] = Field(default_factory=list, description="Top factors, largest first.")


class LeadScored(EventData):
    event_type: ClassVar[EventType] = EventType.LEAD_SCORED
    topic: ClassVar[str] = LEAD_LIFECYCLE

    score: int
    fit_points: int
    grade: str
    stage: str
    model_version: str
    disqualified: str | None = None
    explanation: list[ScoreContribution]
    likelihood: Likelihood | None = Field(default=None, description="Set once a predictive model is active.")


class AccountContext(BaseModel):
    """The account a lead is matched to, as handoff, webhooks and sales tools see it."""

    model_config = ConfigDict(frozen=True)

    account_id: str
    name: str
    owner: str | None = None
    tier: str | None = None
    score: int | None = None
    grade: str | None = None
    engaged_people: int = 0
    matched_by: str = Field(
        description="How the lead was matched: domain, name_exact, name_close+country, ..."
    )
    confidence: float = Field(ge=0, le=1)


class MqlReached(EventData):
    """A lead crossed the MQL rule in this cycle; carries why, for the rep."""

    event_type: ClassVar[EventType] = EventType.MQL_REACHED
    topic: ClassVar[str] = LEAD_LIFECYCLE

    cycle: int = Field(ge=1, description="Qualification cycle; +1 after each return.")
    score: int
    grade: str
    model_version: str
    explanation: list[ScoreContribution]
    email: str | None = None
    traits: dict[str, Any] = Field(default_factory=dict)
    recent_events: list[tuple[str, datetime]] = Field(
        default_factory=list, description="(type, occurred_at) of the lead's latest events."
    )
    channel: str | None = None
    campaign: str | None = None
    source: str | None = Field(default=None, description="First-touch `source` or `utm_source`.")
    account: AccountContext | None = None
    likelihood: Likelihood | None = None
    exploration: bool = Field(
        default=False, description="Handed off to explore: a near miss of the MQL rule, drawn by chance."
    )
    propensity: float | None = Field(
        default=None, gt=0, le=1, description="An exploration handoff's chance of being drawn."
    )

    sealed: str | None = Field(
        default=None,
        description="The personal fields, sealed with the subject's data key (AES-GCM; docs/privacy.md). "
        "Consumers see them opened, or skip the event once the person is erased.",
    )
    subject: str | None = Field(default=None, description="Keyed hash naming whose key seals `sealed`.")


class LeadAccountChanged(EventData):
    """Scoring matched the lead (envelope `lead_id`) to another account, or to none; no personal data."""

    event_type: ClassVar[EventType] = EventType.LEAD_ACCOUNT_CHANGED
    topic: ClassVar[str] = LEAD_LIFECYCLE

    account_id: str | None = Field(description="The account now; null when the lead matches none.")
    previous_account_id: str | None = None
    matched_by: str | None = Field(default=None, description="domain, name_exact, name_close+country, ...")
    confidence: float = Field(default=0, ge=0, le=1)


class AccountScored(EventData):
    """An account's standing moved: its grade, MQA or engaged people changed, or its score entered
    another band of the model's `account.announce_score_band` points (keyed by account id;
    envelope `lead_id` is the lead whose change moved it)."""

    event_type: ClassVar[EventType] = EventType.ACCOUNT_SCORED
    topic: ClassVar[str] = LEAD_LIFECYCLE

    account_id: str
    score: int
    fit_points: int
    grade: str
    engaged_people: int
    mqa: bool
    model_version: str
    explanation: list[ScoreContribution]


class AccountMqaReached(AccountScored):
    """The account met the MQA rule (minimum score, grade, engaged people)."""

    event_type: ClassVar[EventType] = EventType.ACCOUNT_MQA_REACHED

    owner: str | None = None
    member_lead_ids: list[str] = Field(default_factory=list, description="Its engaged members.")


# --- lead.lifecycle: handoff ---------------------------------------------------


class HandoffCreated(EventData):
    event_type: ClassVar[EventType] = EventType.HANDOFF_CREATED
    topic: ClassVar[str] = LEAD_LIFECYCLE

    handoff_id: str
    cycle: int
    owner: str
    policy: str
    decide_by: datetime
    channel: str | None = None
    campaign: str | None = None
    score: int
    grade: str
    team: str | None = None
    source: str | None = None
    mql_at: datetime | None = Field(default=None, description="When the lead reached MQL.")
    explanation: list[ScoreContribution] = Field(
        default_factory=list, description="The scoring rules that made the lead an MQL."
    )
    account: AccountContext | None = None
    routing_reason: str | None = Field(
        default=None,
        description="Why this owner: account_owner, territory, round_robin, capacity_overflow, "
        "ooo_backup, ooo_skipped, team_queue or fallback.",
    )
    routing_rule: str | None = Field(default=None, description="The routing rule that assigned it, if any.")
    routing_note: str | None = Field(default=None, description="Who was passed over and why, if anyone.")
    likelihood: Likelihood | None = None
    exploration: bool = Field(default=False, description="An exploration handoff (not by the MQL rule).")
    propensity: float | None = Field(default=None, gt=0, le=1, description="Its chance of being drawn.")


class HandoffTransition(EventData):
    """Shared shape of every stage change sales makes on a handoff."""

    topic: ClassVar[str] = LEAD_LIFECYCLE

    handoff_id: str
    cycle: int
    from_stage: str
    to_stage: str
    actor: str
    owner: str
    policy: str
    in_time: bool = Field(description="Whether the action came before its SLA deadline.")
    reason: str | None = None
    note: str | None = None
    channel: str | None = None
    campaign: str | None = None
    team: str | None = None
    sealed: str | None = Field(
        default=None, description="`note` (and BANT, opportunity details), sealed with the lead's key."
    )
    subject: str | None = Field(default=None, description="Keyed hash naming whose key seals `sealed`.")


class SalAccepted(HandoffTransition):
    event_type: ClassVar[EventType] = EventType.SAL_ACCEPTED


class LeadRejected(HandoffTransition):
    event_type: ClassVar[EventType] = EventType.LEAD_REJECTED


class LeadReturned(HandoffTransition):
    event_type: ClassVar[EventType] = EventType.LEAD_RETURNED


class SqlQualified(HandoffTransition):
    event_type: ClassVar[EventType] = EventType.SQL_QUALIFIED
    bant: dict[str, Any] = Field(default_factory=dict)


class SqoCreated(HandoffTransition):
    event_type: ClassVar[EventType] = EventType.SQO_CREATED
    opportunity: dict[str, Any] = Field(default_factory=dict)


class LeadDisqualified(HandoffTransition):
    event_type: ClassVar[EventType] = EventType.LEAD_DISQUALIFIED


class OpportunityWon(HandoffTransition):
    """The opportunity closed won, as the CRM reported it (SQO → won)."""

    event_type: ClassVar[EventType] = EventType.OPPORTUNITY_WON
    amount: Decimal = Field(ge=0, description="The deal's value, in `currency`.")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. `EUR`.")


class OpportunityLost(HandoffTransition):
    """The opportunity closed lost (SQO → lost); `reason` says why."""

    event_type: ClassVar[EventType] = EventType.OPPORTUNITY_LOST


class HandoffReopened(HandoffTransition):
    """A manager undid a return or a disqualification: the handoff is an MQL again, with a new
    decision deadline. `in_time` is always true (reopening has no deadline)."""

    event_type: ClassVar[EventType] = EventType.HANDOFF_REOPENED
    decide_by: datetime


class HandoffReassigned(EventData):
    event_type: ClassVar[EventType] = EventType.HANDOFF_REASSIGNED
    topic: ClassVar[str] = LEAD_LIFECYCLE

    handoff_id: str
    from_owner: str
    to_owner: str
    reason: str | None = None


class HandoffClaimed(EventData):
    """A rep took a handoff from a queue; the first claim wins."""

    event_type: ClassVar[EventType] = EventType.HANDOFF_CLAIMED
    topic: ClassVar[str] = LEAD_LIFECYCLE

    handoff_id: str
    from_owner: str = Field(description="The queue it was claimed from.")
    to_owner: str = Field(description="The rep who claimed it.")
    team: str | None = None
    account: AccountContext | None = None


class SlaTimerFired(EventData):
    topic: ClassVar[str] = LEAD_LIFECYCLE

    handoff_id: str
    policy: str
    stage: str
    owner: str
    due_at: datetime
    team: str | None = None


class SlaWarning(SlaTimerFired):
    event_type: ClassVar[EventType] = EventType.SLA_WARNING


class SlaBreached(SlaTimerFired):
    event_type: ClassVar[EventType] = EventType.SLA_BREACHED


# --- lead.lifecycle: privacy ---------------------------------------------------
# Keyed hashes and lead ids only: never an address or a name (docs/privacy.md).


class ErasureRequested(EventData):
    """Scoring erased a person: each service removes or anonymises its rows of this lead (the
    envelope's lead_id), then confirms. One per lead, keyed by it, so a replay meets it after
    every other event of the lead."""

    event_type: ClassVar[EventType] = EventType.ERASURE_REQUESTED
    topic: ClassVar[str] = LEAD_LIFECYCLE

    request_id: str


class ErasureConfirmed(EventData):
    """A service erased its copy of the lead of an erasure request."""

    event_type: ClassVar[EventType] = EventType.ERASURE_CONFIRMED
    topic: ClassVar[str] = LEAD_LIFECYCLE

    request_id: str
    service: str


class LeadErased(EventData):
    """Sent to every webhook subscriber: erase what you hold about this lead (the envelope's lead_id)."""

    event_type: ClassVar[EventType] = EventType.LEAD_ERASED
    topic: ClassVar[str] = LEAD_LIFECYCLE

    erased_at: datetime


# --- ops.alerts ----------------------------------------------------------------


class AlertFigures(EventData):
    """An alert's state change: a return rate over its threshold, or a handoff past its SLA."""

    topic: ClassVar[str] = OPS_ALERTS

    alert_key: str
    metric: Literal["return_rate", "sla_breach"]
    group: str = Field(description="`overall`, `<dimension>:<value>`, or `team:<team>` for a breach.")
    severity: str | None = None
    # return_rate alerts
    window: str | None = None
    rate: float | None = None
    numerator: int = 0
    denominator: int = 0
    ci_low: float | None = None
    ci_high: float | None = None
    threshold: float | None = None
    # sla_breach alerts
    handoff_id: str | None = None
    owner: str | None = None
    team: str | None = None
    policy: str | None = None
    stage: str | None = None
    due_at: datetime | None = None


class AlertRaised(AlertFigures):
    event_type: ClassVar[EventType] = EventType.ALERT_RAISED


class AlertResolved(AlertFigures):
    event_type: ClassVar[EventType] = EventType.ALERT_RESOLVED


EVENT_MODELS: dict[str, type[EventData]] = {
    model.event_type: model
    for model in (
        LeadEventAccepted,
        TrackingMessageFailed,
        LeadScored,
        MqlReached,
        LeadAccountChanged,
        AccountScored,
        AccountMqaReached,
        HandoffCreated,
        SalAccepted,
        LeadRejected,
        LeadReturned,
        SqlQualified,
        SqoCreated,
        LeadDisqualified,
        OpportunityWon,
        OpportunityLost,
        HandoffReopened,
        HandoffReassigned,
        HandoffClaimed,
        SlaWarning,
        SlaBreached,
        AlertRaised,
        AlertResolved,
        ErasureRequested,
        ErasureConfirmed,
        LeadErased,
    )
}


class UnknownEventType(ValueError):
    pass


def parse_data(envelope: Envelope) -> EventData:
    """Validate an envelope's payload against the model registered for its type."""
    model = EVENT_MODELS.get(envelope.type)
    if model is None:
        raise UnknownEventType(f"no model registered for event type {envelope.type!r}")
    return model.model_validate(envelope.data)


def envelope_for(
    data: EventData,
    *,
    source: str,
    lead_id: str | None,
    occurred_at: datetime | None = None,
    identity: str | None = None,
    message_id: str | None = None,
    trace_id: str | None = None,
) -> Envelope:
    return Envelope(
        id=message_id or new_message_id(),
        type=data.event_type,
        schema_version=data.schema_version,
        occurred_at=occurred_at or utcnow(),
        source=source,
        lead_id=lead_id,
        identity=identity,
        trace_id=trace_id or current_trace_id() or new_trace_id(),
        data=data.model_dump(mode="json"),
    )
