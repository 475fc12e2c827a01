"""The table of leads' running score states (`scoring.lead_score_states`) and its queries.

One row per lead: the `score_state.LeadState` its score is computed from, the key of the model
rules it was folded under (a state under another key is stale and rebuilt from the history),
and when its decaying score next needs a look (`decay_due_at`, see `decay_moments`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, DateTime, ForeignKey, Index, Table, Text, func, select, text
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.scoring.score_state import LeadState
from services.scoring.store import SCHEMA, leads, metadata

lead_score_states = Table(
    "lead_score_states",
    metadata,
    Column("lead_id", Text, ForeignKey(f"{SCHEMA}.leads.lead_id", ondelete="CASCADE"), primary_key=True),
    Column("model_key", Text, nullable=False, comment="score_state.model_key of the rules folded under"),
    Column("state", JSONB, nullable=False),
    Column("decay_due_at", DateTime(timezone=True), nullable=True, comment="next look at the decaying score"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_lead_score_states_due", "decay_due_at", postgresql_where=text("decay_due_at IS NOT NULL")),
    schema=SCHEMA,
)


@dataclass(frozen=True)
class SavedState:
    lead_id: str
    state: LeadState
    decay_due_at: datetime | None


async def states(conn: AsyncConnection, lead_ids: Sequence[str], *, model_key: str) -> dict[str, LeadState]:
    """The states of these leads folded under `model_key` (others are missing: rebuild them)."""
    if not lead_ids:
        return {}
    query = select(lead_score_states.c.lead_id, lead_score_states.c.state).where(
        lead_score_states.c.lead_id.in_(list(lead_ids)), lead_score_states.c.model_key == model_key
    )
    return {row.lead_id: LeadState.from_json(row.state) for row in await conn.execute(query)}


async def save_states(conn: AsyncConnection, saved: Sequence[SavedState], *, model_key: str) -> None:
    if not saved:
        return
    statement = insert(lead_score_states)
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=["lead_id"],
            set_={
                "model_key": statement.excluded.model_key,
                "state": statement.excluded.state,
                "decay_due_at": statement.excluded.decay_due_at,
                "updated_at": func.now(),
            },
        ),
        [
            {
                "lead_id": s.lead_id,
                "model_key": model_key,
                "state": s.state.as_json(),
                "decay_due_at": s.decay_due_at,
            }
            for s in saved
        ],
    )


async def forget_states(conn: AsyncConnection, lead_ids: Sequence[str]) -> None:
    """Drop these leads' states (their events changed under them: a merge); rebuilt when next scored."""
    if lead_ids:
        await conn.execute(lead_score_states.delete().where(lead_score_states.c.lead_id.in_(list(lead_ids))))


async def claim_due(conn: AsyncConnection, *, now: datetime, limit: int) -> list[str]:
    """Leads whose decaying score is due for a look, locked for this transaction; leads another
    instance holds are skipped (FOR UPDATE SKIP LOCKED), so instances share the work."""
    query = (
        select(leads.c.lead_id)
        .join(lead_score_states, lead_score_states.c.lead_id == leads.c.lead_id)
        .where(lead_score_states.c.decay_due_at <= now)
        .order_by(lead_score_states.c.decay_due_at)
        .limit(limit)
        .with_for_update(of=leads, skip_locked=True)
    )
    return list((await conn.execute(query)).scalars())
