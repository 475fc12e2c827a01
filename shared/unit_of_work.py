"""The unit of work: one transaction, plus the events it causes.

Handlers receive a `UnitOfWork`, change state through `uow.conn` and announce
what happened with `uow.emit(...)`. Emitted events are written to the outbox
in one statement by `flush()`, inside the same transaction, just before it
commits; nothing reaches Kafka unless the transaction commits.

Work that should happen once per transaction rather than once per message
(re-evaluating an aggregate, say) is registered with `once_before_commit`.

`unit_of_work(...)` is the one place that begins, flushes and commits: routes,
the consumer and operator commands all open their transactions through it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.envelope import Envelope
from shared.events import EventData, envelope_for
from shared.outbox import add_to_outbox, outbox_row
from shared.sealing import SEALED_FIELDS, seal
from shared.topics import Topics

if TYPE_CHECKING:
    from shared.vault import Vault


@dataclass(frozen=True)
class Emitted:
    envelope: Envelope
    topic: str
    key: str | None


@dataclass
class UnitOfWork:
    conn: AsyncConnection
    outbox: Table
    topics: Topics
    source: str
    emitted: list[Emitted] = field(default_factory=list)
    # Seals the personal fields of what is emitted (shared/vault.py); without one they are dropped.
    vault: Vault | None = None
    _flushed: int = 0
    _deferred: dict[str, Callable[[UnitOfWork], Awaitable[None]]] = field(default_factory=dict)

    def once_before_commit(self, key: str, work: Callable[[UnitOfWork], Awaitable[None]]) -> None:
        """Run `work` once, just before the transaction commits, however often it is registered."""
        self._deferred.setdefault(key, work)

    def emit(
        self,
        data: EventData,
        *,
        lead_id: str | None,
        occurred_at: datetime | None = None,
        key: str | None = None,
        trace_id: str | None = None,
    ) -> Envelope:
        """Record `data` for publication on its topic, keyed by `key`, else the lead id.

        The trace id defaults to the one of the message or request being handled.
        """
        envelope = envelope_for(
            data, source=self.source, lead_id=lead_id, occurred_at=occurred_at, trace_id=trace_id
        )
        self.emitted.append(Emitted(envelope, self.topics.name(data.topic), key or lead_id))
        return envelope

    async def flush(self) -> None:
        """Run the deferred work, then write the events emitted since the last flush to the outbox."""
        while self._deferred:
            key = next(iter(self._deferred))
            await self._deferred.pop(key)(self)
        await self.seal_pending()
        pending = self.emitted[self._flushed :]
        if pending:
            await add_to_outbox(self.conn, self.outbox, [(e.envelope, e.topic, e.key) for e in pending])
        self._flushed = len(self.emitted)

    async def seal_pending(self) -> None:
        """Personal fields never reach the outbox (nor Kafka) in clear: sealed under the lead's key."""
        pending = self.emitted[self._flushed :]
        if not any(e.envelope.type in SEALED_FIELDS for e in pending):
            return
        envelopes = [e.envelope for e in pending]
        if self.vault is not None:
            envelopes = await self.vault.seal_lifecycle(self.conn, envelopes)
        else:
            envelopes = [_without_personal_fields(e) for e in envelopes]
        self.emitted[self._flushed :] = [
            Emitted(envelope, e.topic, e.key) for envelope, e in zip(envelopes, pending, strict=True)
        ]

    def take_pending(self) -> list[dict[str, Any]]:
        """The outbox rows of the events emitted since the last flush, for a handler that writes
        them with a statement of its own (a round trip fewer); they count as flushed. Call
        `seal_pending` first when they may carry personal fields."""
        pending = self.emitted[self._flushed :]
        self._flushed = len(self.emitted)
        return [outbox_row(e.envelope, e.topic, e.key) for e in pending]


def _without_personal_fields(envelope: Envelope) -> Envelope:
    if envelope.type not in SEALED_FIELDS or not envelope.lead_id:
        return envelope
    data = seal(envelope.type, envelope.data, subject="", key=None)
    return envelope.model_copy(update={"data": data})


@contextlib.asynccontextmanager
async def unit_of_work(
    engine: AsyncEngine, *, outbox: Table, topics: Topics, source: str, vault: Vault | None = None
) -> AsyncIterator[UnitOfWork]:
    """Begin a transaction; on leaving the block, flush the emitted events into the outbox and
    commit. An exception rolls everything back, events included."""
    async with engine.begin() as conn:
        uow = UnitOfWork(conn=conn, outbox=outbox, topics=topics, source=source, vault=vault)
        yield uow
        await uow.flush()
