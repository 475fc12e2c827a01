"""The table of leads' running score states (`scoring.lead_score_states`) and its queries.

One row per lead: the `score_state.LeadState` its score is computed from, the key of the model
rules it was folded under (a state under another key is stale and rebuilt from the history),
when its decaying score next needs a look (`decay_due_at`, see `decay_moments`), and the
`feature_state.FeatureState` the predictive model's features are read from, with the key of
the engagement rules it was folded under (the same rule: another key, rebuilt).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Table,
    Text,
    bindparam,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.scoring.feature_state import FeatureState
from services.scoring.score_state import LeadState
from services.scoring.store import SCHEMA, leads, metadata
from shared.db import among

lead_score_states = Table(
    "lead_score_states",
    metadata,
    Column("lead_id", Text, ForeignKey(f"{SCHEMA}.leads.lead_id", ondelete="CASCADE"), primary_key=True),
    Column("model_key", Text, nullable=False, comment="score_state.model_key of the rules folded under"),
    # `json` (stored out of line, uncompressed): documents read and written whole (scoring_0009).
    Column("state", JSON, nullable=False),
    Column("decay_due_at", DateTime(timezone=True), nullable=True, comment="next look at the decaying score"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column(
        "features_key", Text, nullable=True, comment="feature_state.features_key of the rules folded under"
    ),
    Column(
        "features",
        JSON(none_as_null=True),
        nullable=True,
        comment="feature_state.FeatureState: counts per event type, rule, section",
    ),
    Index("ix_lead_score_states_due", "decay_due_at", postgresql_where=text("decay_due_at IS NOT NULL")),
    schema=SCHEMA,
)


@dataclass(frozen=True)
class SavedState:
    lead_id: str
    state: LeadState
    decay_due_at: datetime | None
    features: FeatureState | None = None  # saved when save_states is given its key


@dataclass(frozen=True)
class LoadedStates:
    """Leads' states as stored: the score states under the model key, the feature states under
    the features key (either may be missing: rebuild it)."""

    scores: dict[str, LeadState]
    features: dict[str, FeatureState]


async def states(conn: AsyncConnection, lead_ids: Sequence[str], *, model_key: str) -> dict[str, LeadState]:
    """The states of these leads folded under `model_key` (others are missing: rebuild them)."""
    if not lead_ids:
        return {}
    query = select(lead_score_states.c.lead_id, lead_score_states.c.state).where(
        among(lead_score_states.c.lead_id, lead_ids), lead_score_states.c.model_key == model_key
    )
    return {row.lead_id: LeadState.from_json(row.state) for row in await conn.execute(query)}


async def states_and_features(
    conn: AsyncConnection, lead_ids: Sequence[str], *, model_key: str, features_key: str | None
) -> LoadedStates:
    """The score and feature states of these leads folded under these keys, in one query (no
    feature states with `features_key` None)."""
    found = LoadedStates({}, {})
    if not lead_ids:
        return found
    c = lead_score_states.c
    columns = [c.lead_id, c.model_key, c.state] + ([c.features_key, c.features] if features_key else [])
    for row in await conn.execute(select(*columns).where(among(c.lead_id, lead_ids))):
        if row.model_key == model_key:
            found.scores[row.lead_id] = LeadState.from_json(row.state)
        if features_key and row.features_key == features_key and row.features is not None:
            found.features[row.lead_id] = FeatureState.from_json(row.features)
    return found


class Features(enum.Enum):
    """What saving score states does to the feature states beside them, when not writing them."""

    UNCHANGED = "unchanged"  # no events folded (the decay loop): the stored ones still hold
    DROPPED = "dropped"  # events folded into the score states only: the feature states lack them


async def save_states(
    conn: AsyncConnection, saved: Sequence[SavedState], *, model_key: str, features: Features | str
) -> None:
    """Store the score states; and each one's feature state (`SavedState.features`) under the
    key `features`, or, with no feature states, leave the stored ones or drop them."""
    if not saved:
        return
    statement = insert(lead_score_states)
    updated = {
        "model_key": statement.excluded.model_key,
        "state": statement.excluded.state,
        "decay_due_at": statement.excluded.decay_due_at,
        "updated_at": func.now(),
    }
    if features is not Features.UNCHANGED:
        updated |= {"features_key": statement.excluded.features_key, "features": statement.excluded.features}
    rows = []
    for s in saved:
        row = {
            "lead_id": s.lead_id,
            "model_key": model_key,
            "state": s.state.as_json(),
            "decay_due_at": s.decay_due_at,
            "features_key": None,
            "features": None,
        }
        if isinstance(features, str):
            assert s.features is not None, "a feature state is saved with every score state then"
            row |= {"features_key": features, "features": s.features.as_json()}
        rows.append(row)
    await conn.execute(statement.on_conflict_do_update(index_elements=["lead_id"], set_=updated), rows)


async def forget_states(conn: AsyncConnection, lead_ids: Sequence[str]) -> None:
    """Drop these leads' states (their events changed under them: a merge); rebuilt when next scored."""
    if lead_ids:
        await conn.execute(lead_score_states.delete().where(among(lead_score_states.c.lead_id, lead_ids)))


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


async def claim_unfeatured(
    conn: AsyncConnection,
    *,
    model_key: str,
    features_key: str,
    active_since: datetime,
    after: str,
    limit: int,
) -> list[str]:
    """Leads after `after` (in lead_id order) scored since `active_since` under `model_key`
    with no feature state under `features_key`, locked for this transaction; leads a consumer
    batch holds are skipped (it builds theirs), so warming never waits on the event path."""
    c = lead_score_states.c
    query = (
        select(c.lead_id)
        .where(
            c.model_key == model_key,
            c.updated_at >= active_since,
            c.lead_id > after,
            or_(c.features_key.is_distinct_from(features_key), c.features.is_(None)),
        )
        .order_by(c.lead_id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await conn.execute(query)).scalars())


async def save_features(
    conn: AsyncConnection, features: Mapping[str, FeatureState], *, features_key: str
) -> None:
    """Store these leads' feature states beside their score states (left as they are)."""
    if not features:
        return
    c = lead_score_states.c
    statement = (
        update(lead_score_states)
        .where(c.lead_id == bindparam("_lead_id"))
        .values(features_key=bindparam("_key"), features=bindparam("_features"))
    )
    rows = [
        {"_lead_id": lead_id, "_key": features_key, "_features": state.as_json()}
        for lead_id, state in features.items()
    ]
    await conn.execute(statement, rows)
