"""Group commit: concurrent look-ups coalesced into one flush at a time (the vault's key creation).

A caller asks for some keys. When no flush is running, the first caller's keys start one (on
the event loop's next turn, so every request already running in this turn joins it); keys asked
for while a flush is in flight wait for the next flush, which starts as soon as that one ends,
with everything gathered meanwhile. A key already in the flight waits for that flight. There
is no timer: a caller never waits for a linger, only for at most one flush before its own, and
each flush is bounded by what the flush function bounds (the vault's: the Postgres timeouts).

A failed flush fails every caller that waited for it, with its error; the next flush starts
afresh. A caller that gives up (cancelled) leaves the flush to the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class _Flush(Generic[K, V]):
    """The keys of one flush and its outcome."""

    keys: dict[K, None] = field(default_factory=dict)  # ordered, deduplicated
    done: asyncio.Future[Mapping[K, V]] = field(default_factory=lambda: _loop().create_future())


class GroupCommit(Generic[K, V]):
    """One flush at a time of the keys callers ask for; `flush(keys)` answers each of them."""

    def __init__(self, flush: Callable[[list[K]], Awaitable[Mapping[K, V]]]) -> None:
        self._flush = flush
        self._flying: _Flush[K, V] | None = None
        self._next: _Flush[K, V] | None = None
        self._runner: asyncio.Task[None] | None = None
        self.flushes = 0  # how many flushes ran (the tests read it)

    async def get(self, keys: Iterable[K]) -> dict[K, V]:
        """The answer for each of `keys`, from the flush in flight or the next one."""
        wanted = list(dict.fromkeys(keys))
        waits: list[_Flush[K, V]] = []
        for key in wanted:
            flying = self._flying
            if flying is not None and key in flying.keys:
                flush = flying
            else:
                if self._next is None:
                    self._next = _Flush()
                flush = self._next
                flush.keys[key] = None
            if all(flush is not other for other in waits):
                waits.append(flush)
        if self._runner is None and self._next is not None:
            self._runner = asyncio.create_task(self._run())
        answers: dict[K, V] = {}
        for flush in waits:
            # shielded: one caller's cancellation must not cancel the flush the others wait for
            answers.update(await asyncio.shield(flush.done))
        return {key: answers[key] for key in wanted if key in answers}

    async def _run(self) -> None:
        try:
            while self._next is not None:
                flush, self._next = self._next, None
                self._flying = flush
                self.flushes += 1
                try:
                    answer = await self._flush(list(flush.keys))
                except Exception as exc:  # every caller of this flush hears why
                    flush.done.set_exception(exc)
                    flush.done.add_done_callback(_retrieved)
                else:
                    flush.done.set_result(answer)
                finally:
                    self._flying = None
                    flush.done.cancel()  # a no-op once answered; the callers' end if the runner was
        finally:
            self._runner = None
            if self._next is not None:  # the runner was cancelled (shut down): nobody will flush these
                self._next.done.cancel()
                self._next = None


def _loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def _retrieved(done: asyncio.Future[Any]) -> None:
    """Read a failed flush's error, so one whose callers all gave up is not logged as unread."""
    if not done.cancelled():
        done.exception()
