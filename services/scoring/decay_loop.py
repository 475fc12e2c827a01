"""The background loop that keeps stored scores true as time passes (see decay_moments)."""

from __future__ import annotations

import asyncio
import contextlib

from services.scoring.handlers import look_at_decayed
from services.scoring.model import ScoringModel
from shared.envelope import utcnow
from shared.runtime import BackgroundLoop, ServiceRuntime

PAGE = 200  # leads re-scored per transaction


def make_decay_loop(model: ScoringModel, *, poll_s: float) -> BackgroundLoop:
    async def decayed_scores(runtime: ServiceRuntime, stop: asyncio.Event) -> None:
        while not stop.is_set():
            async with runtime.unit_of_work() as uow:
                looked_at = await look_at_decayed(uow, model, now=utcnow(), limit=PAGE)
            if looked_at < PAGE:  # a full page: more may be due, go on at once
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=poll_s)

    return decayed_scores
