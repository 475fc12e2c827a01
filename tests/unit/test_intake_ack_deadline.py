"""A frozen broker's 503 comes within the request's own deadline: sealing (a new person's key,
group-committed to Postgres) and the wait for the broker's acks share `produce_timeout_s`, so a
slow key write shortens the ack wait instead of adding to it, and a key write slower than the
whole deadline is a 503 at the deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake.domain import EventTypeSpec, IntakeEvent, TrackingPlan
from services.intake.event_limits import EventLimits
from services.intake.handlers import accept_events, ack_deadline
from services.intake.privacy import EventSealer
from shared.outages import DependencyUnavailable
from shared.vault import Vault

SEALING_S = 0.4
DEADLINE_S = 0.6


class SlowVault:
    """A vault whose key write takes `sealing_s`, as a loaded Postgres's group commit may."""

    def __init__(self, sealing_s: float = SEALING_S) -> None:
        self.sealing_s = sealing_s

    def subject(self, kind: Any, value: str) -> str:
        return f"subject-of-{value}"

    async def keys_now(self, engine: Any, subjects: Iterable[str], *, create: bool) -> dict[str, bytes]:
        await asyncio.sleep(self.sealing_s)
        return {subject: b"k" * 32 for subject in subjects}


class FrozenBroker:
    """A producer whose acks never come."""

    async def send(self, topic: str, *, value: bytes, key: bytes) -> asyncio.Future[object]:
        return asyncio.get_running_loop().create_future()


def page_view() -> IntakeEvent:
    return IntakeEvent.model_validate(
        {
            "event_id": "e-1",
            "type": "page_view",
            "occurred_at": "2026-03-01T11:59:00Z",
            "email": "ada@example.com",
        }
    )


async def refused_after(vault: SlowVault) -> float:
    """Seconds until `accept_events` refuses a page view with a 503, its acks never coming."""
    loop = asyncio.get_running_loop()
    sealer = EventSealer(cast(Vault, vault), cast(AsyncEngine, None))
    started = loop.time()
    with pytest.raises(DependencyUnavailable):
        await accept_events(
            [page_view()],
            plan=TrackingPlan(version="1", types={"page_view": EventTypeSpec()}),
            limits=EventLimits(),
            producer=cast(AIOKafkaProducer, FrozenBroker()),
            topic="lead.events",
            source="intake",
            batch=False,
            ack_by=ack_deadline(DEADLINE_S),
            sealer=sealer,
        )
    return loop.time() - started


async def test_a_request_waits_for_acks_only_what_is_left_of_its_deadline_after_sealing() -> None:
    took = await refused_after(SlowVault())

    assert DEADLINE_S <= took < DEADLINE_S + 0.15, took  # not SEALING_S + DEADLINE_S


async def test_a_key_write_slower_than_the_deadline_is_a_503_at_the_deadline() -> None:
    took = await refused_after(SlowVault(sealing_s=DEADLINE_S * 5))

    assert DEADLINE_S <= took < DEADLINE_S + 0.15, took  # not the key write's own timeouts
