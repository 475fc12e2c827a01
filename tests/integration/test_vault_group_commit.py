"""The vault's key creation on the real Postgres: concurrent first events of new people share one
statement, each key is durable when its caller hears of it, two instances creating the same
person's key end with one key both use, an erased person stays erased, and an outage is a
quick DependencyUnavailable for the people not cached while the cached ones are still served."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from leadflow.devstack.postgres import create_database
from shared.db import make_engine, migrate
from shared.outages import DependencyUnavailable
from shared.sealing import SubjectKind
from shared.settings import Settings
from shared.vault import PRIVACY_MIGRATIONS, PRIVACY_SCHEMA, Vault, subject_keys
from tests.conftest import database_url
from tests.outage_drills import OwnPostgres


@pytest.fixture
async def vault_settings(postgres_admin_url: str) -> AsyncIterator[Settings]:
    """A database of its own holding the vault's schema, and no broker."""
    name = f"v_{uuid.uuid4().hex[:10]}"
    await create_database(postgres_admin_url, name)
    settings = Settings(env="test", database_url=database_url(postgres_admin_url, name), db_pool_size=4)
    engine = make_engine(settings, bounded=False)
    try:
        await migrate(engine, schema=PRIVACY_SCHEMA, versions_dir=PRIVACY_MIGRATIONS)
    finally:
        await engine.dispose()
    yield settings


@pytest.fixture
async def engines(vault_settings: Settings) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """Two engines, as two intake instances have."""
    first, second = make_engine(vault_settings), make_engine(vault_settings)
    try:
        yield first, second
    finally:
        await first.dispose()
        await second.dispose()


def people(vault: Vault, count: int) -> list[str]:
    run = uuid.uuid4().hex[:6]
    return [vault.subject(SubjectKind.EMAIL, f"p{i}.{run}@northwind.example") for i in range(count)]


async def stored_keys(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(subject_keys))).scalar_one())


async def test_concurrent_new_people_share_a_statement_and_their_keys_are_durable_on_return(
    vault_settings: Settings, engines: tuple[AsyncEngine, AsyncEngine]
) -> None:
    engine, other = engines
    vault = Vault.of(vault_settings)
    subjects = people(vault, 32)
    answers = await asyncio.gather(*(vault.keys_now(engine, [s], create=True) for s in subjects))
    creator = vault._creators[engine]
    assert creator.flushes <= 2, creator.flushes  # one, or one more for those behind the first
    # read back by another instance, from Postgres (its cache is empty): the same keys
    again = await Vault.of(vault_settings).keys_now(other, subjects, create=False)
    assert again == {s: answer[s] for s, answer in zip(subjects, answers, strict=True)}
    assert all(key is not None and len(key) == 32 for key in again.values())


async def test_two_instances_creating_the_same_people_at_once_end_with_one_key_each(
    vault_settings: Settings, engines: tuple[AsyncEngine, AsyncEngine]
) -> None:
    first, second = Vault.of(vault_settings), Vault.of(vault_settings)
    subjects = people(first, 60)
    for round_ in range(3):  # in opposite orders, a few at a time: flushes overlap between instances
        part = subjects[round_ * 20 : (round_ + 1) * 20]
        answers = await asyncio.gather(
            *(first.keys_now(engines[0], [s], create=True) for s in part),
            *(second.keys_now(engines[1], [s], create=True) for s in reversed(part)),
        )
        seen_by_first = {s: k for answer in answers[:20] for s, k in answer.items()}
        seen_by_second = {s: k for answer in answers[20:] for s, k in answer.items()}
        assert seen_by_first == seen_by_second
    assert await stored_keys(engines[0]) == 60


async def test_a_key_committed_by_another_instance_during_the_statement_is_read_again(
    vault_settings: Settings, engines: tuple[AsyncEngine, AsyncEngine]
) -> None:
    scoring, intake = Vault.of(vault_settings), Vault.of(vault_settings)
    [subject] = people(scoring, 1)
    async with engines[0].begin() as conn:  # another instance's transaction creates it, uncommitted
        theirs = await scoring.keys(conn, [subject], create=True)
        ours = asyncio.create_task(intake.keys_now(engines[1], [subject], create=True))
        await asyncio.sleep(0.3)
        assert not ours.done()  # the insert waits on the conflicting row's transaction
    # committed after our statement's snapshot: the conflict did nothing, the snapshot cannot show it
    assert await ours == theirs
    assert await stored_keys(engines[0]) == 1


async def test_an_erased_person_stays_erased_for_an_instance_that_never_saw_them(
    vault_settings: Settings, engines: tuple[AsyncEngine, AsyncEngine]
) -> None:
    eraser, intake = Vault.of(vault_settings), Vault.of(vault_settings)
    erased, kept = people(eraser, 2)
    await eraser.keys_now(engines[0], [kept], create=True)
    async with engines[0].begin() as conn:
        await eraser.destroy(conn, [erased])
    answer = await intake.keys_now(engines[1], [erased, kept], create=True)
    assert answer[erased] is None and answer[kept] is not None


async def test_frozen_postgres_is_a_quick_refusal_for_people_not_cached_while_cached_ones_serve(
    tmp_path: Path,
) -> None:
    postgres = await OwnPostgres.start(tmp_path, "vault")
    settings = Settings(env="test", database_url=postgres.server.database_url("vault"))
    setup = make_engine(settings, bounded=False)
    await migrate(setup, schema=PRIVACY_SCHEMA, versions_dir=PRIVACY_MIGRATIONS)
    await setup.dispose()
    engine = make_engine(settings)
    vault = Vault.of(settings)
    known, *new = people(vault, 9)
    try:
        key = (await vault.keys_now(engine, [known], create=True))[known]
        postgres.freeze()
        try:
            started = time.monotonic()
            outcomes = await asyncio.gather(
                *(vault.keys_now(engine, [s], create=True) for s in new), return_exceptions=True
            )
            waited = time.monotonic() - started
            cached = await asyncio.wait_for(vault.keys_now(engine, [known], create=True), timeout=0.1)
        finally:
            postgres.thaw()
        assert all(isinstance(o, Exception) for o in outcomes), outcomes
        assert all(isinstance(o, (DependencyUnavailable, OSError)) for o in outcomes), outcomes
        assert waited < 2.0, waited
        assert cached == {known: key}
    finally:
        await engine.dispose()
        postgres.close()
