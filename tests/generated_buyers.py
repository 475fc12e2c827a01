"""Generated history where what sales decides depends on what the rule model ignores.

Four kinds of lead, all of good fit (so the grade never tells them apart):
- silent buyers read pricing, integrations and security pages on several days but never
  fill a form: the rules score them ~30, under the MQL line, yet sales would take them;
- researchers binge content downloads and webinars: the rules score them over 50, yet
  sales sends most of them back (`not_a_fit`);
- form buyers ask for a demo: over the line, and mostly good;
- browsers read a blog post or two: neither.

Pure and seeded: the same seed gives the same history. Sales' decision on a handed-off
lead is drawn from its kind, so a model that sees page sections and content counts can
learn what the rule score cannot.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.scoring import store
from services.scoring.domain import LeadEvent, LeadScore, meets_mql_rule, score_lead
from services.scoring.features import AccountFacts
from services.scoring.incremental_scorer import TimelineScorer
from services.scoring.labels import LabelRules, SalesDecision
from services.scoring.learned_rules import explores
from services.scoring.learning_config import ExplorationSettings
from services.scoring.model import ScoringModel
from services.scoring.training import Example, examples_of
from shared.event_types import EventType

KINDS = ("silent_buyer", "researcher", "form_buyer", "browser")
GOOD_CHANCE = {"silent_buyer": 0.97, "researcher": 0.05, "form_buyer": 0.95, "browser": 0.1}
MIX = (0.3, 0.3, 0.15, 0.25)
TRAITS = {
    "title": "VP of Marketing",
    "department": "marketing",
    "company_size": 400,
    "industry": "software",
    "country": "US",
    "channel": "organic",
}


@dataclass(frozen=True)
class GeneratedLead:
    lead_id: str
    kind: str
    good: bool  # would sales take it on if handed off?
    traits: dict[str, object]
    events: list[LeadEvent]

    @property
    def last_at(self) -> datetime:
        return max(e.occurred_at for e in self.events)


def generate(count: int, *, start: datetime, days: int, seed: int) -> Iterator[GeneratedLead]:
    """`count` leads arriving evenly over `days` from `start`."""
    rng = random.Random(seed)
    for n in range(count):
        kind = rng.choices(KINDS, MIX)[0]
        arrived = start + timedelta(days=days * n / count, minutes=rng.randrange(600))
        events = list(_journey(kind, arrived, rng))
        yield GeneratedLead(f"{seed}-{n}", kind, rng.random() < GOOD_CHANCE[kind], dict(TRAITS), events)


def _journey(kind: str, at: datetime, rng: random.Random) -> Iterator[LeadEvent]:
    def event(event_type: str, day: float, **properties: object) -> LeadEvent:
        return LeadEvent(event_type, at + timedelta(days=day, minutes=rng.randrange(300)), properties)

    yield event("identify", 0)
    if kind == "silent_buyer":
        for day in range(rng.randint(3, 5)):
            yield event("page_view", day, url="https://example.com/pricing")
            yield event(
                "page_view", day, url=f"https://example.com/{rng.choice(['integrations', 'security'])}/sso"
            )
            yield event("page_view", day, url="https://example.com/integrations/crm")
    elif kind == "researcher":
        for day in range(rng.randint(3, 5)):
            yield event("content_download", day, content_id=f"ebook-{day}")
            yield event("webinar_registered", day, webinar_id=f"w{day}")
            yield event("webinar_attended", day + 0.1, webinar_id=f"w{day}")
        yield event("page_view", 1, url="https://example.com/blog/trends")
    elif kind == "form_buyer":
        yield event("page_view", 0, url="https://example.com/product")
        yield event("demo_request", 1, form_id="demo")
        yield event("page_view", 1, url="https://example.com/pricing")
        if rng.random() < 0.5:
            yield event("content_download", 0, content_id="ebook-0")
    else:
        for day in range(rng.randint(1, 3)):
            yield event("page_view", day, url=f"https://example.com/blog/post-{day}")


@dataclass(frozen=True)
class HandedOff:
    lead: GeneratedLead
    at: datetime
    exploration: bool
    propensity: float | None

    def decisions(self) -> dict[int, list[SalesDecision]]:
        """What sales decides a day later: qualify a good lead, return the others as not a fit."""
        later = self.at + timedelta(days=1)
        handed = SalesDecision(EventType.HANDOFF_CREATED, self.at, None, self.exploration, self.propensity)
        if self.lead.good:
            decided = [
                SalesDecision(
                    EventType.SAL_ACCEPTED,
                    self.at + timedelta(hours=2),
                    None,
                    self.exploration,
                    self.propensity,
                ),
                SalesDecision(EventType.SQL_QUALIFIED, later, None, self.exploration, self.propensity),
            ]
        else:
            decided = [
                SalesDecision(EventType.LEAD_REJECTED, later, "not_a_fit", self.exploration, self.propensity)
            ]
        return {1: [handed, *decided]}


def hand_off(
    leads: list[GeneratedLead],
    model: ScoringModel,
    *,
    exploration: ExplorationSettings | None = None,
    qualifies: Callable[[GeneratedLead, LeadScore], bool] | None = None,
) -> list[HandedOff]:
    """Which leads reach sales, scored at their last event: those the MQL rule (or `qualifies`)
    takes, plus the near misses exploration draws."""
    handed: list[HandedOff] = []
    for lead in leads:
        score = score_lead(model, email=None, traits=lead.traits, events=lead.events, at=lead.last_at)
        if qualifies(lead, score) if qualifies else meets_mql_rule(model, score):
            handed.append(HandedOff(lead, lead.last_at, False, None))
        elif exploration and (p := explores(model, score, None, exploration, lead_id=lead.lead_id, cycle=1)):
            handed.append(HandedOff(lead, lead.last_at, True, p))
    return handed


async def seed(conn: AsyncConnection, leads: list[GeneratedLead], handed: list[HandedOff]) -> None:
    """Store generated leads, their events and the decisions on their handoffs in scoring's
    tables, as the running service would have (for training against a real database)."""
    await conn.execute(
        insert(store.leads), [{"lead_id": lead.lead_id, "traits": lead.traits} for lead in leads]
    )
    events = [
        {
            "event_id": f"{lead.lead_id}-{i}",
            "lead_id": lead.lead_id,
            "type": e.event_type,
            "occurred_at": e.occurred_at,
            "properties": dict(e.properties),
        }
        for lead in leads
        for i, e in enumerate(lead.events)
    ]
    for start in range(0, len(events), 5000):
        await conn.execute(insert(store.lead_events), events[start : start + 5000])
    decisions = [
        {
            "message_id": f"{h.lead.lead_id}-d{i}",
            "lead_id": h.lead.lead_id,
            "cycle": cycle,
            "handoff_id": f"h-{h.lead.lead_id}",
            "event_type": d.event_type,
            "reason": d.reason,
            "at": d.at,
            "exploration": d.exploration,
            "propensity": d.propensity,
        }
        for h in handed
        for cycle, listed in h.decisions().items()
        for i, d in enumerate(listed)
    ]
    if decisions:
        await conn.execute(insert(store.sales_decisions), decisions)


def examples_from(
    handed: Iterable[HandedOff],
    model: ScoringModel,
    labels: LabelRules,
    account_of: Callable[[GeneratedLead], AccountFacts | None] = lambda lead: None,
) -> list[Example]:
    """The training examples the handed-off leads' decisions make, as `leadflow model train`
    takes them; `account_of` gives a lead the account scoring would have stored for it."""
    examples: list[Example] = []
    scorer = TimelineScorer(model)  # as training prepares it: once for every lead
    for h in handed:
        examples += examples_of(
            model,
            email=None,
            traits=h.lead.traits,
            events=h.lead.events,
            cycles=h.decisions(),
            rules=labels,
            account=account_of(h.lead),
            scorer=scorer,
        )
    return examples
