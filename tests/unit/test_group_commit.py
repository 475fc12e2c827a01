"""The vault's group commit (shared/group_commit.py): concurrent misses share one flush, a miss
during a flush joins the next one, nothing waits for a timer, and a failed flush fails only the
callers that waited for it."""

from __future__ import annotations

import asyncio

import pytest

from shared.group_commit import GroupCommit


class Recorder:
    """A flush function that answers each key with its upper case, records what each flush
    asked for, and can be held open (to put callers behind a flush in flight) or made to fail."""

    def __init__(self) -> None:
        self.flushed: list[list[str]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.failure: Exception | None = None

    async def __call__(self, keys: list[str]) -> dict[str, str]:
        self.flushed.append(keys)
        await self.release.wait()
        if self.failure is not None:
            raise self.failure
        return {key: key.upper() for key in keys}


async def test_concurrent_misses_share_one_flush_and_each_hears_its_own_keys() -> None:
    flush = Recorder()
    group = GroupCommit(flush)
    answers = await asyncio.gather(*(group.get([f"k{i}", "shared"]) for i in range(32)))
    assert answers[7] == {"k7": "K7", "shared": "SHARED"}
    assert len(flush.flushed) == 1
    assert sorted(flush.flushed[0]) == sorted({"shared", *(f"k{i}" for i in range(32))})


async def test_a_lone_miss_is_flushed_at_once_without_waiting_for_company() -> None:
    group = GroupCommit(Recorder())
    answer = await asyncio.wait_for(group.get(["alone"]), timeout=0.05)  # no linger, no timer
    assert answer == {"alone": "ALONE"}


async def test_misses_during_a_flush_join_the_next_one_and_keys_in_flight_wait_for_it() -> None:
    flush = Recorder()
    flush.release.clear()
    group = GroupCommit(flush)
    first = asyncio.create_task(group.get(["a", "b"]))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert flush.flushed == [["a", "b"]]  # in flight, held open
    later = [asyncio.create_task(group.get([key])) for key in ("c", "d", "b")]
    await asyncio.sleep(0)
    assert flush.flushed == [["a", "b"]]  # nobody flushes beside the flight
    flush.release.set()
    assert await first == {"a": "A", "b": "B"}
    assert [await task for task in later] == [{"c": "C"}, {"d": "D"}, {"b": "B"}]
    assert flush.flushed == [["a", "b"], ["c", "d"]]  # "b" was in the flight: not asked again
    assert group.flushes == 2


async def test_a_failed_flush_fails_its_callers_and_the_next_flush_starts_afresh() -> None:
    flush = Recorder()
    flush.failure = ConnectionRefusedError("postgres is down")
    group = GroupCommit(flush)
    outcomes = await asyncio.gather(group.get(["a"]), group.get(["b"]), return_exceptions=True)
    assert all(isinstance(outcome, ConnectionRefusedError) for outcome in outcomes)
    flush.failure = None
    assert await group.get(["a"]) == {"a": "A"}


async def test_a_caller_that_gives_up_leaves_the_flush_to_the_others() -> None:
    flush = Recorder()
    flush.release.clear()
    group = GroupCommit(flush)
    impatient = asyncio.create_task(group.get(["a"]))
    patient = asyncio.create_task(group.get(["a", "b"]))
    await asyncio.sleep(0)
    impatient.cancel()
    with pytest.raises(asyncio.CancelledError):
        await impatient
    flush.release.set()
    assert await patient == {"a": "A", "b": "B"}
