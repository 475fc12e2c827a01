"""Every event type of the product contract, declared once.

Code names an event type through `EventType` (or a payload class's `event_type`), never as
a string literal: a test fails on a literal anywhere else. Stdlib only, so pure domain
modules can use it.
"""

from enum import StrEnum


class EventType(StrEnum):
    # lead.events
    LEAD_EVENT = "lead.event"
    # lead.events.failed: Tracking API messages accepted but not mapped (feedback lists them)
    TRACKING_MESSAGE_FAILED = "tracking.message_failed"
    # lead.lifecycle: scoring
    LEAD_SCORED = "lead.scored"
    MQL_REACHED = "lead.mql_reached"
    # lead.lifecycle: handoff
    HANDOFF_CREATED = "handoff.created"
    SAL_ACCEPTED = "lead.sal_accepted"
    LEAD_REJECTED = "lead.rejected"
    LEAD_RETURNED = "lead.returned"
    SQL_QUALIFIED = "lead.sql_qualified"
    SQO_CREATED = "lead.sqo_created"
    LEAD_DISQUALIFIED = "lead.disqualified"
    HANDOFF_REASSIGNED = "handoff.reassigned"
    HANDOFF_CLAIMED = "handoff.claimed"
    # The reopen transition exists in the handoff lifecycle but no route exposes it yet, so
    # it has no payload model (and is never published).
    HANDOFF_REOPENED = "handoff.reopened"
    SLA_WARNING = "handoff.sla_warning"
    SLA_BREACHED = "handoff.sla_breached"
    # ops.alerts
    ALERT_RAISED = "alert.raised"
    ALERT_RESOLVED = "alert.resolved"


# Types declared ahead of their payload model.
WITHOUT_MODEL = frozenset({EventType.HANDOFF_REOPENED})
