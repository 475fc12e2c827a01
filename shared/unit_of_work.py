"""The unit of work: one transaction, plus the events it causes.

Handlers receive a `UnitOfWork`, change state through `uow.conn` and announce
what happened with `uow.emit(...)`, which writes to the outbox in the same
transaction. Nothing reaches Kafka unless the transaction commits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.envelope import Envelope
from shared.events import EventData, envelope_for
from shared.outbox import add_to_outbox
from shared.topics import Topics


@dataclass
class UnitOfWork:
    conn: AsyncConnection
    outbox: Table
    topics: Topics
    source: str
    emitted: list[Envelope] = field(default_factory=list)

    async def emit(
        self,
        data: EventData,
        *,
        lead_id: str | None,
        occurred_at: datetime | None = None,
        key: str | None = None,
        message_id: str | None = None,
    ) -> Envelope:
        """Record `data` for publication on its topic, keyed by `key`, else the lead id."""
        envelope = envelope_for(
            data, source=self.source, lead_id=lead_id, occurred_at=occurred_at, message_id=message_id
        )
        await add_to_outbox(
            self.conn, self.outbox, envelope, topic=self.topics.name(data.topic), key=key or lead_id
        )
        self.emitted.append(envelope)
        return envelope
