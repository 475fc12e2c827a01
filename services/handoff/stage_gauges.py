"""Figures read from handoff's tables for `/metrics`: `leadflow_handoffs{stage}`.

A loop counts the handoffs per stage every `gauge_refresh_s` seconds (one
grouped query on the stage index). Every instance reads the same table and
reports the same figure, so dashboards take `max by (stage)`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.handoff import store
from services.handoff.domain import Stage
from services.handoff.metrics import HANDOFFS
from shared.runtime import BackgroundLoop, ServiceRuntime


async def handoffs_by_stage(conn: AsyncConnection) -> dict[str, int]:
    t = store.handoffs
    rows = await conn.execute(select(t.c.stage, func.count().label("handoffs")).group_by(t.c.stage))
    return {row.stage: row.handoffs for row in rows}


def make_gauge_loop(*, refresh_s: float) -> BackgroundLoop:
    seen: set[str] = {stage.value for stage in Stage}

    def publish(counts: Mapping[str, int]) -> None:
        """Set every stage seen so far, at zero when no handoff is in it any more."""
        seen.update(counts)
        for stage in seen:
            HANDOFFS.labels(stage).set(counts.get(stage, 0))

    async def handoff_gauges(runtime: ServiceRuntime, stop: asyncio.Event) -> None:
        while not stop.is_set():
            async with runtime.engine.connect() as conn:
                publish(await handoffs_by_stage(conn))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=refresh_s)

    return handoff_gauges
