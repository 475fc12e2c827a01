"""scoring's erasure tables and the queries that find and delete a person's rows.

`ERASURE_PLAN` says, for every scoring table that can hold something about a person, what an
erasure does to it; tests/unit/test_erasure_plan.py fails on a table it does not cover.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ARRAY, Column, DateTime, Table, Text, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from services.scoring.accounts.tables import account_members, accounts
from services.scoring.score_state_store import lead_score_states
from services.scoring.store import (
    SCHEMA,
    anonymous_ids,
    event_conflicts,
    handoff_outcomes,
    inbox,
    lead_events,
    lead_merges,
    leads,
    metadata,
    outbox,
    sales_decisions,
    score_changes,
)

erasures = Table(
    "erasures",
    metadata,
    Column("request_id", Text, primary_key=True),
    Column("requested_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("requested_by", Text, nullable=False, comment="the API key's id"),
    Column("subject", Text, nullable=True, comment="the email's keyed hash, never the address"),
    Column("lead_ids", ARRAY(Text), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    schema=SCHEMA,
)

erasure_confirmations = Table(
    "erasure_confirmations",
    metadata,
    Column("request_id", Text, primary_key=True),
    Column("service", Text, primary_key=True),
    Column("lead_id", Text, primary_key=True),
    Column("confirmed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    schema=SCHEMA,
)


ERASURE_PLAN: dict[str, str] = {
    leads.fullname: "deleted",
    anonymous_ids.fullname: "deleted (with the lead)",
    lead_events.fullname: "deleted (with the lead)",
    event_conflicts.fullname: "deleted",
    score_changes.fullname: "deleted",
    handoff_outcomes.fullname: "deleted",
    lead_merges.fullname: "deleted",
    lead_score_states.fullname: (
        "deleted (the running score and feature states: counts, decayed sums, times per event "
        "type, rule and site section; no personal data)"
    ),
    sales_decisions.fullname: "deleted (the person's outcomes no longer teach the model)",
    account_members.fullname: "deleted; the account's roll-up keeps the share, with no identity",
    accounts.fullname: "kept: a company, not a person (name, domains, owner, roll-up counts)",
    outbox.fullname: "the lead's rows deleted (keyed by lead id)",
    inbox.fullname: "kept: message ids and topics only",
    erasures.fullname: "kept: the request, the email's keyed hash and lead ids (the proof of erasure)",
    erasure_confirmations.fullname: "kept: which service confirmed when",
}


@dataclass(frozen=True)
class Person:
    """Everything scoring knows that names one person."""

    email: str | None
    lead_ids: tuple[str, ...]
    anonymous_ids: tuple[str, ...]


async def find_person(conn: AsyncConnection, *, email: str | None, lead_id: str | None) -> Person:
    """The person's email, leads (merged ones included) and anonymous ids, locked for erasure."""
    found = select(leads.c.lead_id, leads.c.email).with_for_update()
    if email is not None and lead_id is not None:
        found = found.where(or_(leads.c.email == email, leads.c.lead_id == lead_id))
    elif email is not None:
        found = found.where(leads.c.email == email)
    else:
        found = found.where(leads.c.lead_id == lead_id)
    rows = (await conn.execute(found)).all()
    emails = sorted({row.email for row in rows if row.email})
    if email is None and emails:
        email = emails[0]  # the lead's own (an email has one lead: `leads.email` is unique)
    lead_ids = {row.lead_id for row in rows} | ({lead_id} if lead_id else set())
    absorbed = await conn.execute(
        select(lead_merges.c.absorbed).where(lead_merges.c.into.in_(sorted(lead_ids)))
    )
    lead_ids |= {row.absorbed for row in absorbed}
    anonymous = await conn.execute(
        select(anonymous_ids.c.anonymous_id).where(anonymous_ids.c.lead_id.in_(sorted(lead_ids)))
    )
    return Person(email, tuple(sorted(lead_ids)), tuple(sorted(row.anonymous_id for row in anonymous)))


async def delete_person(conn: AsyncConnection, lead_ids: Sequence[str]) -> None:
    """Every scoring row of these leads, gone (events and anonymous ids go with the lead)."""
    ids = list(lead_ids)
    for table in (
        event_conflicts,
        score_changes,
        handoff_outcomes,
        sales_decisions,
        account_members,
        lead_score_states,
    ):
        await conn.execute(delete(table).where(table.c.lead_id.in_(ids)))
    await conn.execute(
        delete(lead_merges).where(or_(lead_merges.c.absorbed.in_(ids), lead_merges.c.into.in_(ids)))
    )
    await conn.execute(delete(lead_events).where(lead_events.c.lead_id.in_(ids)))
    await conn.execute(delete(leads).where(leads.c.lead_id.in_(ids)))
    await conn.execute(delete(outbox).where(outbox.c.key.in_([i.encode() for i in ids])))


async def add_request(conn: AsyncConnection, **values: Any) -> None:
    await conn.execute(erasures.insert().values(**values))


async def confirm(conn: AsyncConnection, rows: list[dict[str, str]]) -> None:
    if rows:
        await conn.execute(insert(erasure_confirmations).values(rows).on_conflict_do_nothing())


async def complete_if_confirmed(conn: AsyncConnection, request_id: str, *, services: Sequence[str]) -> None:
    """Mark the request completed once every service confirmed every one of its leads."""
    request = (await conn.execute(select(erasures).where(erasures.c.request_id == request_id))).first()
    if request is None or request.completed_at is not None:
        return
    counted = select(func.count()).where(
        erasure_confirmations.c.request_id == request_id, erasure_confirmations.c.service.in_(list(services))
    )
    if int((await conn.execute(counted)).scalar_one()) >= len(request.lead_ids) * len(services):
        await conn.execute(
            update(erasures).where(erasures.c.request_id == request_id).values(completed_at=func.now())
        )


async def request_of(conn: AsyncConnection, request_id: str) -> tuple[Row[Any] | None, Sequence[Row[Any]]]:
    request = (await conn.execute(select(erasures).where(erasures.c.request_id == request_id))).first()
    confirmations = (
        await conn.execute(
            select(erasure_confirmations).where(erasure_confirmations.c.request_id == request_id)
        )
    ).all()
    return request, confirmations
