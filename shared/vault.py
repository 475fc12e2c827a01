"""The key vault (schema `privacy`): one random data key per person-subject, for crypto-shredding.

Every service reads it; intake and scoring create keys, scoring's erasures destroy them. A key is
stored sealed with `LEADFLOW_SECRETS_KEY` (shared/secret_box.py), so a database dump alone opens
nothing. Destroying a key blanks it and keeps the row: the row is then the suppression list
(only keyed hashes, never an address), and a later event for the subject is refused at intake.

Each process keeps the keys it used in a bounded LRU: a hit costs no round trip. Destructions
reach every instance's cache through `follow_destructions` (a poll, like API key revocations:
a bus event would reach one instance of each consumer group only); the instance that destroys
drops them at once. A stale hit is harmless: an event sealed with a key destroyed meanwhile is
unreadable everywhere, which is what erasure wants.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
from sqlalchemy import Column, DateTime, MetaData, Table, Text, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared import sealing
from shared.db import among
from shared.envelope import Envelope
from shared.group_commit import GroupCommit
from shared.logging import get_logger
from shared.outages import DependencyUnavailable, is_outage
from shared.sealing import SEALED_FIELDS, SubjectKind
from shared.secret_box import SecretBox
from shared.settings import Settings

PRIVACY_SCHEMA = "privacy"
PRIVACY_MIGRATIONS = Path(__file__).with_name("privacy_migrations")
_OVERLAP = timedelta(seconds=5)  # destructions committed late by a slow transaction are read again
_RECHECK_S = 2.0  # after an outage, a cache miss is a 503 at once for this long

log = get_logger(__name__)

metadata = MetaData()
subject_keys = Table(
    "subject_keys",
    metadata,
    Column("subject", Text, primary_key=True, comment="keyed hash of an email, anonymous id or lead id"),
    Column(
        "sealed_key",
        Text,
        nullable=True,
        comment="data key sealed with LEADFLOW_SECRETS_KEY; null: destroyed",
    ),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("destroyed_at", DateTime(timezone=True), nullable=True, comment="set: erased and suppressed"),
    schema=PRIVACY_SCHEMA,
)

ERASED = None  # what the vault answers for a destroyed key


@dataclass
class Vault:
    """Keys by subject, cached; `None` for a subject whose key was destroyed (erased, suppressed)."""

    box: SecretBox
    secret: bytes
    cache_size: int = 100_000
    poll_s: float = 0.5
    _cache: OrderedDict[str, bytes | None] = field(default_factory=OrderedDict)
    _unreachable_until: float = 0.0
    _creators: dict[AsyncEngine, GroupCommit[str, bytes | None]] = field(default_factory=dict)

    @classmethod
    def of(cls, settings: Settings) -> Vault:
        return cls(
            box=SecretBox.from_key(settings.secrets_key),
            secret=settings.privacy_subject_key.encode(),
            cache_size=settings.privacy_key_cache_size,
            poll_s=settings.privacy_erasures_poll_s,
        )

    def subject(self, kind: SubjectKind, value: str) -> str:
        return sealing.subject_of(self.secret, kind, value)

    def lead_subject(self, lead_id: str) -> str:
        return self.subject(SubjectKind.LEAD, lead_id)

    def cached(self, subjects: Iterable[str]) -> tuple[dict[str, bytes | None], list[str]]:
        """The cached keys of `subjects`, and those not cached."""
        found: dict[str, bytes | None] = {}
        missing: list[str] = []
        for subject in subjects:
            if subject in self._cache:
                self._cache.move_to_end(subject)
                found[subject] = self._cache[subject]
            elif subject not in found:
                missing.append(subject)
        return found, missing

    async def keys(
        self, conn: AsyncConnection, subjects: Iterable[str], *, create: bool
    ) -> dict[str, bytes | None]:
        """The key of each subject (`None`: destroyed); `create` makes the missing ones, else a
        subject the vault never saw is absent from the answer."""
        found, missing = self.cached(subjects)
        if missing:
            if create:
                rows = [{"subject": s, "sealed_key": self._seal(sealing.new_data_key())} for s in missing]
                # Rows as an executemany: one prepared statement whatever their number.
                await conn.execute(insert(subject_keys).on_conflict_do_nothing(), rows)
            query = select(subject_keys.c.subject, subject_keys.c.sealed_key).where(
                among(subject_keys.c.subject, missing)
            )
            for row in await conn.execute(query):
                key = None if row.sealed_key is None else self._open(row.sealed_key)
                found[row.subject] = key
                self._remember(row.subject, key)
        return found

    async def keys_now(
        self, engine: AsyncEngine, subjects: Iterable[str], *, create: bool
    ) -> dict[str, bytes | None]:
        """`keys` outside any transaction of the caller's (intake, which has no other). While
        Postgres is unreachable, cached keys still serve; a subject not cached is a
        DependencyUnavailable (a 503): never an event written in clear.

        Created keys are group-committed: the misses of concurrent requests go to Postgres
        together, one autocommitted statement per flush (`_create_now`), so a key is durable
        when its caller hears of it."""
        subjects = list(subjects)
        found, missing = self.cached(subjects)
        if not missing:
            return found
        self._refuse_while_unreachable()
        if create:
            found.update(await self._creator(engine).get(missing))
            return found
        try:
            async with engine.connect() as conn:
                return await self.keys(conn, subjects, create=False)
        except Exception as exc:
            self._note_outage(exc)
            raise

    def _creator(self, engine: AsyncEngine) -> GroupCommit[str, bytes | None]:
        creator = self._creators.get(engine)
        if creator is None:
            creator = GroupCommit(lambda subjects: self._create_now(engine, subjects))
            self._creators[engine] = creator
        return creator

    async def _create_now(self, engine: AsyncEngine, subjects: list[str]) -> dict[str, bytes | None]:
        """One flush of the group commit: every subject's key, created where there was none, in
        one statement of fixed text in autocommit (no BEGIN/COMMIT round trips), on the driver's
        connection (prepared once per connection; SQLAlchemy's per-statement work would cost
        more than the statement). Bounded by the engine's timeouts (pool, connect, statement)."""
        self._refuse_while_unreachable()  # a flush queued behind one that met an outage
        subjects = sorted(subjects)  # one order: two instances creating the same keys never deadlock
        new_keys = {subject: sealing.new_data_key() for subject in subjects}
        sealed = [self._seal(new_keys[subject]) for subject in subjects]
        try:
            async with engine.connect() as conn:
                rows = await _on_driver(conn, _CREATE_KEYS, subjects, sealed)
                found: dict[str, bytes | None] = {}
                for row in rows:  # a created key is the one made here: no need to open it
                    subject = row["subject"]
                    found[subject] = new_keys[subject] if row["created"] else self._opened(row["sealed_key"])
                # created by another instance and committed after this statement's snapshot: the
                # conflict left it alone and the snapshot does not show it; a new statement does
                raced = [subject for subject in subjects if subject not in found]
                if raced:
                    rows = await _on_driver(conn, _READ_KEYS, raced)
                    found.update({row["subject"]: self._opened(row["sealed_key"]) for row in rows})
        except Exception as exc:
            self._note_outage(exc)
            raise
        if len(found) < len(subjects):
            raise RuntimeError("the vault has no row for a subject it has just created")
        for subject, key in found.items():
            self._remember(subject, key)
        return found

    def _refuse_while_unreachable(self) -> None:
        if time.monotonic() < self._unreachable_until:  # do not hold each request by a timeout
            raise DependencyUnavailable("Postgres is unreachable and this person's data key is not cached")

    def _note_outage(self, exc: Exception) -> None:
        if is_outage(exc):
            self._unreachable_until = time.monotonic() + _RECHECK_S

    async def destroy(self, conn: AsyncConnection, subjects: Iterable[str]) -> None:
        """Blank the keys of `subjects` (creating tombstones for subjects never seen, so they are
        suppressed too); this instance forgets them at once, the others within a poll."""
        subjects = sorted(set(subjects))
        if not subjects:
            return
        statement = insert(subject_keys).values(
            [{"subject": s, "sealed_key": None, "destroyed_at": func.now()} for s in subjects]
        )
        kept = func.coalesce(subject_keys.c.destroyed_at, statement.excluded.destroyed_at)
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=["subject"], set_={"sealed_key": None, "destroyed_at": kept}
            )
        )
        for subject in subjects:
            self._remember(subject, ERASED)

    async def destroyed_now(self, conn: AsyncConnection, subjects: Iterable[str]) -> set[str]:
        """Which of `subjects` have a destroyed key, read from the vault itself (not the cache)."""
        wanted = sorted(set(subjects))
        if not wanted:
            return set()
        query = select(subject_keys.c.subject).where(
            among(subject_keys.c.subject, wanted), subject_keys.c.destroyed_at.is_not(None)
        )
        destroyed = {row.subject for row in await conn.execute(query)}
        for subject in destroyed:
            self._remember(subject, ERASED)
        return destroyed

    async def follow_destructions(self, engine: AsyncEngine, stop: asyncio.Event) -> None:
        """Mark the keys destroyed on any instance as destroyed in this one's cache, every poll."""
        since: datetime | None = None
        failing = False
        while not stop.is_set():
            try:
                since = await self._forget_destroyed(engine, since)
                failing = False
            except Exception as exc:
                if not failing:
                    log.warning("vault_destructions_unreadable", error=type(exc).__name__)
                failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.poll_s)

    async def _forget_destroyed(self, engine: AsyncEngine, since: datetime | None) -> datetime:
        async with engine.connect() as conn:
            now = (await conn.execute(select(func.now()))).scalar_one()
            query = select(subject_keys.c.subject).where(subject_keys.c.destroyed_at.is_not(None))
            if since is not None:
                query = query.where(subject_keys.c.destroyed_at >= since - _OVERLAP)
            else:
                query = query.where(subject_keys.c.destroyed_at >= now - _OVERLAP)
            for (subject,) in await conn.execute(query):
                if subject in self._cache:
                    self._cache[subject] = ERASED
        return now

    # --- envelopes ----------------------------------------------------------

    async def open_envelopes(
        self, conn: AsyncConnection, envelopes: list[Envelope]
    ) -> list[Envelope | sealing.Unopenable | None]:
        """Each envelope with its personal fields opened; `None` for one whose subject is erased,
        the error for a box that does not open (altered). Envelopes of types that are never
        sealed, and plain ones written before sealing, pass as they are."""
        subjects = {s for e in envelopes if (s := sealing.subject_in(e.data)) and sealing.is_sealed(e.data)}
        keys = await self.keys(conn, subjects, create=False) if subjects else {}
        opened: list[Envelope | sealing.Unopenable | None] = []
        for envelope in envelopes:
            subject = sealing.subject_in(envelope.data)
            if subject is None:
                opened.append(envelope)
                continue
            key = keys.get(subject)
            if key is None or not sealing.is_sealed(envelope.data):  # erased (or sealed after it)
                if envelope.type in sealing.SKIPPED_WHEN_ERASED:
                    opened.append(None)
                else:
                    opened.append(
                        envelope.model_copy(update={"data": sealing.emptied(envelope.type, envelope.data)})
                    )
                continue
            try:
                data = sealing.open_sealed(envelope.type, envelope.data, key=key)
            except sealing.Unopenable as exc:
                opened.append(exc)
                continue
            opened.append(envelope.model_copy(update={"data": data}))
        return opened

    async def seal_lifecycle(self, conn: AsyncConnection, envelopes: list[Envelope]) -> list[Envelope]:
        """Lifecycle envelopes with their personal fields sealed under their lead's key."""
        wanted = [
            e for e in envelopes if e.type in SEALED_FIELDS and e.lead_id and not sealing.subject_in(e.data)
        ]
        if not wanted:
            return envelopes
        keys = await self.keys(conn, {self.lead_subject(e.lead_id or "") for e in wanted}, create=True)
        chosen = {id(e) for e in wanted}
        return [self._sealed(e, keys) if id(e) in chosen else e for e in envelopes]

    def _sealed(self, envelope: Envelope, keys: dict[str, bytes | None]) -> Envelope:
        subject = self.lead_subject(envelope.lead_id or "")
        data = sealing.seal(envelope.type, envelope.data, subject=subject, key=keys.get(subject))
        return envelope.model_copy(update={"data": data})

    # --- the cache and sealing at rest --------------------------------------

    def _remember(self, subject: str, key: bytes | None) -> None:
        self._cache[subject] = key
        self._cache.move_to_end(subject)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _seal(self, key: bytes) -> str:
        return self.box.seal(base64.urlsafe_b64encode(key).decode())

    def _open(self, sealed_key: str) -> bytes:
        return base64.urlsafe_b64decode(self.box.open(sealed_key).encode())

    def _opened(self, sealed_key: str | None) -> bytes | None:
        return ERASED if sealed_key is None else self._open(sealed_key)


# The group commit's statement: the missing keys inserted, and every subject's key read, at once.
# The parts of one statement share a snapshot, so the final SELECT sees only keys that existed
# before it (those of `created` come from RETURNING), and `created` tells which are new.
_CREATE_KEYS = f"""
WITH wanted (subject, sealed_key) AS (SELECT * FROM unnest($1::text[], $2::text[])),
created AS (
    INSERT INTO {PRIVACY_SCHEMA}.subject_keys (subject, sealed_key)
    SELECT subject, sealed_key FROM wanted
    ON CONFLICT (subject) DO NOTHING
    RETURNING subject, sealed_key
)
SELECT subject, sealed_key, true AS created FROM created
UNION ALL
SELECT subject, sealed_key, false FROM {PRIVACY_SCHEMA}.subject_keys WHERE subject = ANY($1::text[])
"""
_READ_KEYS = f"SELECT subject, sealed_key FROM {PRIVACY_SCHEMA}.subject_keys WHERE subject = ANY($1::text[])"


async def _on_driver(conn: AsyncConnection, statement: str, *args: object) -> list[asyncpg.Record]:
    """`statement` run by asyncpg itself on `conn`'s connection, outside any transaction.

    A statement the client gave up on (a timeout) or a broken socket leaves the connection in an
    unknown state: it is dropped, as `shared.db` does for SQLAlchemy's own statements."""
    raw = await conn.get_raw_connection()
    driver: asyncpg.Connection = raw.driver_connection
    try:
        rows: list[asyncpg.Record] = await driver.fetch(statement, *args)
    except (OSError, asyncpg.InterfaceError):
        driver.terminate()
        await conn.invalidate()
        raise
    return rows


def subjects_of_person(
    vault: Vault, *, email: str | None, anonymous_ids: Iterable[str], lead_ids: Iterable[str]
) -> list[str]:
    """Every subject an erasure destroys: the email's, each anonymous id's and each lead's."""
    subjects = [vault.subject(SubjectKind.ANONYMOUS, a) for a in anonymous_ids]
    subjects += [vault.lead_subject(lead_id) for lead_id in lead_ids]
    if email:
        subjects.append(vault.subject(SubjectKind.EMAIL, email))
    return subjects
