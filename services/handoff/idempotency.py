"""Idempotency-Key: a retried action gets the first answer and changes nothing.

A request with a key runs in the same transaction that remembers its answer, under an
advisory lock on (key id, Idempotency-Key), so a concurrent retry waits for the first and
then replays it. A key reused for a different request (method, path or body) is refused.
The answer is stored as JSON, so a replay is byte-for-byte what a fresh answer would be.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from services.handoff import store
from shared.unit_of_work import UnitOfWork


class KeyReused(Exception):
    """The Idempotency-Key was used before for a different request."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    replayed: bool = False


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests the same request."""
    return hashlib.sha256(method.encode() + path.encode() + body).hexdigest()


async def answer_once(
    uow: UnitOfWork,
    *,
    principal: str,
    key: str | None,
    request_fingerprint: str,
    work: Callable[[], Awaitable[dict[str, Any]]],
) -> Answer:
    """Run `work` (which answers 200) once per key; without a key, just run it."""
    if key is None:
        return Answer(200, await work())
    await store.lock_idempotency_key(uow.conn, principal=principal, key=key)
    prior = await store.remembered_response(uow.conn, principal=principal, key=key)
    if prior is not None:
        if prior.fingerprint != request_fingerprint:
            raise KeyReused(key)
        return Answer(prior.status, prior.body, replayed=True)
    body = orjson.loads(orjson.dumps(await work()))  # JSON as stored, so a replay answers the same
    await store.remember_response(
        uow.conn, principal=principal, key=key, fingerprint=request_fingerprint, status=200, body=body
    )
    return Answer(200, body)
