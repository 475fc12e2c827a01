"""The predictive models' queries (tables in store.py): the decisions and histories training
streams, and the stored models with the one that is active."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from services.scoring.accounts.tables import account_members, accounts
from services.scoring.domain import LeadEvent
from services.scoring.features import AccountFacts
from services.scoring.labels import SalesDecision
from services.scoring.store import lead_events, leads, predictive_models, sales_decisions
from services.scoring.training import Trained
from shared.db import among

DecisionsByLead = dict[str, dict[int, list[SalesDecision]]]


@dataclass(frozen=True)
class DecidedLead:
    lead_id: str
    email: str | None
    traits: dict[str, Any]
    events: list[LeadEvent]
    account: AccountFacts | None = None


async def decisions_by_lead(conn: AsyncConnection, *, since: datetime) -> DecisionsByLead:
    """Every decision since `since`, per lead and cycle (one row per handoff decision: few)."""
    d = sales_decisions
    query = select(
        d.c.lead_id, d.c.cycle, d.c.event_type, d.c.at, d.c.reason, d.c.exploration, d.c.propensity
    )
    by_lead: DecisionsByLead = defaultdict(lambda: defaultdict(list))
    for row in await conn.execute(query.where(d.c.at >= since)):
        decision = SalesDecision(row.event_type, row.at, row.reason, row.exploration, row.propensity)
        by_lead[row.lead_id][row.cycle].append(decision)
    return by_lead


async def stream_decided_leads(conn: AsyncConnection, *, since: datetime) -> AsyncIterator[DecidedLead]:
    """Every lead with a decision since `since`, with its whole history, one at a time: one
    ordered scan, streamed (a server-side cursor), never all held."""
    decided = select(sales_decisions.c.lead_id).where(sales_decisions.c.at >= since).distinct()
    e, a = lead_events.c, accounts.c
    query = (
        select(e.lead_id, e.type, e.occurred_at, e.properties, leads.c.email, leads.c.traits, *_ACCOUNT_FACTS)
        .join(leads, leads.c.lead_id == e.lead_id)
        .outerjoin(account_members, account_members.c.lead_id == e.lead_id)
        .outerjoin(accounts, a.account_id == account_members.c.account_id)
        .where(e.lead_id.in_(decided))
        .order_by(e.lead_id, e.occurred_at)
        .execution_options(yield_per=10_000)
    )
    current: DecidedLead | None = None
    result = await conn.stream(query)
    async for partition in result.partitions():
        for row in partition:
            if current is None or row.lead_id != current.lead_id:
                if current is not None:
                    yield current
                current = DecidedLead(row.lead_id, row.email, dict(row.traits or {}), [], _account_of(row))
            current.events.append(LeadEvent(row.type, row.occurred_at, row.properties))
    if current is not None:
        yield current


_ACCOUNT_FACTS = (
    accounts.c.account_id,
    accounts.c.tier,
    accounts.c.score.label("account_score"),
    accounts.c.grade.label("account_grade"),
    accounts.c.engaged_people,
    account_members.c.matched_by,
)


def _account_of(row: Any) -> AccountFacts | None:
    if row.account_id is None:
        return None
    return AccountFacts(row.tier, row.account_score, row.account_grade, row.engaged_people, row.matched_by)


async def account_facts(conn: AsyncConnection, lead_ids: Sequence[str]) -> dict[str, AccountFacts]:
    """The accounts of those of `lead_ids` that have one (the model's account features)."""
    query = (
        select(account_members.c.lead_id, *_ACCOUNT_FACTS)
        .join(accounts, accounts.c.account_id == account_members.c.account_id)
        .where(among(account_members.c.lead_id, lead_ids))
    )
    found = {}
    for row in await conn.execute(query):
        if (account := _account_of(row)) is not None:
            found[row.lead_id] = account
    return found


async def save_model(conn: AsyncConnection, trained: Trained) -> None:
    """Store a trained model, inactive; the same model trained twice is stored once."""
    values = {
        "version": trained.version,
        "digest": trained.digest,
        "window_from": trained.window[0],
        "window_to": trained.window[1],
        "holdout_from": trained.holdout_from,
        "features": list(trained.features),
        "calibration": {"a": trained.calibration.a, "b": trained.calibration.b},
        "metrics": {
            "model": trained.model.as_dict(),
            "rule": trained.rule.as_dict(),
            "counts": trained.counts,
        },
        "booster": trained.booster,
    }
    await conn.execute(
        insert(predictive_models).values(**values).on_conflict_do_nothing(index_elements=["version"])
    )


async def activate(conn: AsyncConnection, version: str, *, at: datetime) -> bool:
    """Make `version` the active model (and no other); False when there is no such model."""
    found = (
        await conn.execute(select(predictive_models.c.version).where(predictive_models.c.version == version))
    ).first()
    if found is None:
        return False
    m = predictive_models
    await conn.execute(update(m).where(m.c.active, m.c.version != version).values(active=False))
    await conn.execute(update(m).where(m.c.version == version).values(active=True, activated_at=at))
    return True


async def active_model(conn: AsyncConnection) -> Row[Any] | None:
    return (await conn.execute(select(predictive_models).where(predictive_models.c.active))).first()


async def active_version(conn: AsyncConnection) -> str | None:
    """The active model's version alone (what scoring polls: the booster is read on a change)."""
    m = predictive_models
    return (await conn.execute(select(m.c.version).where(m.c.active))).scalar()


async def list_models(conn: AsyncConnection) -> Sequence[Any]:
    m = predictive_models
    query = select(m.c.version, m.c.trained_at, m.c.window_from, m.c.window_to, m.c.metrics, m.c.active)
    return (await conn.execute(query.order_by(m.c.trained_at.desc()))).all()
