"""Queries on the account tables: the matching indexes, members, roll-ups, and the API's reads."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Text, and_, any_, bindparam, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from services.scoring.accounts.account_backtest import AccountBook
from services.scoring.accounts.account_score import Aggregate, Firmographics, MemberState
from services.scoring.accounts.matching import (
    AccountCandidate,
    CandidateKeys,
    blocking_key,
    normalize_company_name,
)
from services.scoring.accounts.tables import account_domains, account_members, accounts
from services.scoring.store import SCHEMA, leads
from shared.db import among

AUTO_NAMESPACE = uuid.UUID("6f0c1d1e-8f4e-4b7a-9a53-acc0000a11ed")


def auto_account_id(domain: str) -> str:
    """The same id on every instance for the account a corporate domain starts."""
    return f"auto-{uuid.uuid5(AUTO_NAMESPACE, domain)}"


def _any_of(name: str) -> Any:
    """`= ANY(:name)`, one array of text, rather than `IN (one placeholder per value)`: the
    statement's text stays the same whatever the batch's number of values, so it is prepared
    once per connection rather than parsed and planned again for each new count. The roll-up's
    statements, which run every batch, are built once at import with it: building a select and
    its cache key again on every batch cost the Python side more than running it."""
    return any_(bindparam(name, type_=ARRAY(Text)))


# --- matching --------------------------------------------------------------------------------


_CANDIDATE_COLUMNS = (
    accounts.c.account_id,
    accounts.c.name_normalized,
    accounts.c.domains,
    accounts.c.country,
    accounts.c.tier,
    accounts.c.engaged_people,
    accounts.c.created_at,
    accounts.c.external_id,
)
_BY_DOMAIN = (
    select(*_CANDIDATE_COLUMNS)
    .join(account_domains, account_domains.c.account_id == accounts.c.account_id)
    .where(account_domains.c.domain == _any_of("values"))
)
_BY_NAME = select(*_CANDIDATE_COLUMNS).where(accounts.c.name_normalized == _any_of("values"))
_BY_BLOCK = select(*_CANDIDATE_COLUMNS).where(accounts.c.name_block == _any_of("values"))
_BY_EXTERNAL_ID = select(*_CANDIDATE_COLUMNS).where(accounts.c.external_id == _any_of("values"))


async def candidates(conn: AsyncConnection, keys: Iterable[CandidateKeys]) -> list[AccountCandidate]:
    """Accounts owning one of the domains, named the same, sharing a name's blocking key, or
    whose external id is a group id:
    one index look-up per kind of key for the whole batch, never a scan of every name."""
    domains: set[str] = set()
    names: set[str] = set()
    blocks: set[str] = set()
    groups: set[str] = set()
    for k in keys:
        domains.update(k.domains)
        names.update([k.name] if k.name else [])
        blocks.update([k.block] if k.block else [])
        groups.update([k.group_id] if k.group_id else [])
    # One indexed select per kind of key: an OR of the three would scan the table.
    selects = [
        (statement, {"values": sorted(values)})
        for statement, values in (
            (_BY_DOMAIN, domains),
            (_BY_NAME, names),
            (_BY_BLOCK, blocks),
            (_BY_EXTERNAL_ID, groups),  # a Tracking API group's id (unique, indexed)
        )
        if values
    ]
    if not selects:
        return []
    found: dict[str, AccountCandidate] = {}
    for statement, values in selects:  # separate: a UNION would have to compare the JSONB domains
        for r in await conn.execute(statement, values):
            found[r.account_id] = AccountCandidate(
                r.account_id,
                r.name_normalized or "",
                tuple(r.domains),
                r.country,
                r.tier,
                r.engaged_people,
                r.created_at,
                r.external_id,
            )
    return list(found.values())


_MEMBERS_OF = select(account_members).where(account_members.c.lead_id == _any_of("lead_ids"))


async def members_of(conn: AsyncConnection, lead_ids: Sequence[str]) -> dict[str, Row[Any]]:
    return {row.lead_id: row for row in await conn.execute(_MEMBERS_OF, {"lead_ids": list(lead_ids)})}


async def member_shares(
    conn: AsyncConnection, account_ids: Sequence[str]
) -> dict[str, list[tuple[str, MemberState]]]:
    """Each account's members (lead id, share), by lead id: what a rescore rebuilds it from."""
    if not account_ids:
        return {}
    query = (
        select(account_members)
        .where(among(account_members.c.account_id, account_ids), account_members.c.as_of.is_not(None))
        .order_by(account_members.c.account_id, account_members.c.lead_id)
    )
    found: dict[str, list[tuple[str, MemberState]]] = {}
    for row in await conn.execute(query):
        state = member_state_of(row)
        if state is not None:
            found.setdefault(row.account_id, []).append((row.lead_id, state))
    return found


async def account_ids_page(conn: AsyncConnection, *, after: str | None, limit: int) -> list[str]:
    query = select(accounts.c.account_id).order_by(accounts.c.account_id).limit(limit)
    if after is not None:
        query = query.where(accounts.c.account_id > after)
    return list((await conn.execute(query)).scalars())


def member_state_of(row: Row[Any]) -> MemberState | None:
    if row.account_id is None or row.as_of is None:
        return None
    return MemberState(row.engagement, row.as_of, row.engaged, row.department, row.seniority)


# The members' and the accounts' rows are written with one statement each of fixed text, the
# rows sent as ONE parameter: a JSON array encoded with orjson (datetimes as RFC 3339 text) and
# read back as typed rows by `jsonb_to_recordset`. The text stays the same whatever the number
# of rows, so it is parsed, planned and prepared once per connection, and Postgres runs it once
# per batch rather than once per row. (A multi-row VALUES statement's text changes with the row
# count: prepared anew each batch. An executemany sends and executes one statement per row. An
# `unnest` of one array per column had the driver check and encode every element of every
# array on its own, a measurable share of the roll-up's CPU; one JSON text is one string.)
MEMBER_COLUMNS = (
    ("lead_id", "text"), ("account_id", "text"), ("matched_by", "text"), ("confidence", "float8"),
    ("evidence", "text"), ("facts_digest", "text"), ("engagement", "float8"), ("as_of", "timestamptz"),
    ("engaged", "boolean"), ("department", "text"), ("seniority", "text"),
)  # fmt: skip


def _recordset(columns: Sequence[tuple[str, str]]) -> str:
    """`jsonb_to_recordset` of the `:rows` parameter, typed by the columns' (name, type)."""
    return f"jsonb_to_recordset(CAST(:rows AS jsonb)) AS v({', '.join(f'{n} {t}' for n, t in columns)})"


SAVE_MEMBERS = text(
    f"INSERT INTO {SCHEMA}.account_members ({', '.join(n for n, _ in MEMBER_COLUMNS)}, updated_at) "
    f"SELECT {', '.join(n for n, _ in MEMBER_COLUMNS)}, now() FROM {_recordset(MEMBER_COLUMNS)} "
    "ON CONFLICT (lead_id) DO UPDATE SET "
    + ", ".join(f"{n} = excluded.{n}" for n, _ in MEMBER_COLUMNS if n != "lead_id")
    + ", updated_at = now()"
)


def _rows_json(rows: Sequence[dict[str, Any]], columns: Iterable[str]) -> str:
    """The rows as one JSON array. `jsonb_to_recordset` reads a missing key as null: a column
    the caller forgot is refused here rather than written as null."""
    if missing := set(columns) - rows[0].keys():
        raise ValueError(f"rows without {sorted(missing)}")
    return orjson.dumps(rows).decode()


async def save_members(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Upsert the members' rows (dicts of `MEMBER_COLUMNS`) in one statement."""
    if rows:
        await conn.execute(SAVE_MEMBERS, {"rows": _rows_json(rows, (n for n, _ in MEMBER_COLUMNS))})


async def create_auto_accounts(conn: AsyncConnection, found: dict[str, str]) -> None:
    """Accounts for corporate domains no account owns ({domain: name}); idempotent across instances."""
    if not found:
        return
    rows: list[dict[str, Any]] = []
    for domain, name in sorted(found.items()):
        normalized = normalize_company_name(name)
        rows.append(
            {
                "account_id": auto_account_id(domain),
                "name": name,
                "name_normalized": normalized,
                "name_block": blocking_key(normalized),
                "domains": [domain],
                "source": "auto",
            }
        )
    await conn.execute(insert(accounts).on_conflict_do_nothing(index_elements=["account_id"]), rows)
    await conn.execute(
        insert(account_domains).on_conflict_do_nothing(index_elements=["domain"]),
        [{"domain": domain, "account_id": auto_account_id(domain)} for domain in sorted(found)],
    )


# --- roll-ups ---------------------------------------------------------------------------------


# What the roll-up reads of a locked account: its firmographics, owner and name (a lead's
# context), its aggregate and its standing; not the stored explanation or domains (JSON
# decoded for nothing).
ROLL_UP_COLUMNS = tuple(
    accounts.c[name]
    for name in (
        "account_id", "name", "owner", "tier", "industry", "size", "country", "engagement",
        "engagement_at", "members", "engaged_people", "departments", "seniorities", "score",
        "grade", "mqa", "mqa_at",
    )
)  # fmt: skip


_FOR_UPDATE = (
    select(*ROLL_UP_COLUMNS)
    .where(accounts.c.account_id == _any_of("ids"))
    .order_by(accounts.c.account_id)
    .with_for_update()
)


async def accounts_for_update(conn: AsyncConnection, account_ids: Iterable[str]) -> dict[str, Row[Any]]:
    """The accounts (`ROLL_UP_COLUMNS`), locked in id order (so two instances never deadlock on them)."""
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    return {row.account_id: row for row in await conn.execute(_FOR_UPDATE, {"ids": ids})}


def aggregate_of(row: Row[Any]) -> Aggregate:
    return Aggregate(
        engagement=row.engagement,
        engagement_at=row.engagement_at,
        members=row.members,
        engaged_people=row.engaged_people,
        departments=dict(row.departments),
        seniorities=dict(row.seniorities),
    )


ROLLUP_COLUMNS = (
    ("engagement", "float8"), ("engagement_at", "timestamptz"), ("members", "int4"),
    ("engaged_people", "int4"), ("departments", "jsonb"), ("seniorities", "jsonb"), ("score", "int4"),
    ("fit_points", "int4"), ("grade", "text"), ("mqa", "boolean"), ("mqa_at", "timestamptz"),
    ("explanation", "jsonb"), ("model_version", "text"),
)  # fmt: skip
SAVE_ROLLUPS = text(
    f"UPDATE {SCHEMA}.accounts AS a SET "
    + ", ".join(f"{n} = v.{n}" for n, _ in ROLLUP_COLUMNS)
    + f", updated_at = now() FROM {_recordset((('account_id', 'text'), *ROLLUP_COLUMNS))} "
    "WHERE a.account_id = v.account_id"
)


async def save_rollups(conn: AsyncConnection, changes: list[dict[str, Any]]) -> None:
    """Each account's new aggregate and score (dicts of `ROLLUP_COLUMNS` plus account_id), in one
    statement (see `SAVE_MEMBERS`)."""
    if changes:
        columns = ("account_id", *(n for n, _ in ROLLUP_COLUMNS))
        await conn.execute(SAVE_ROLLUPS, {"rows": _rows_json(changes, columns)})


async def nurture_members(
    conn: AsyncConnection, account_id: str, *, min_score: int, exclude: set[str]
) -> list[str]:
    """Members still in nurture at or above a score: who an account's MQA may qualify."""
    query = (
        select(leads.c.lead_id)
        .join(account_members, account_members.c.lead_id == leads.c.lead_id)
        .where(
            account_members.c.account_id == account_id,
            leads.c.stage == "nurture",
            leads.c.score >= min_score,
        )
        .order_by(leads.c.lead_id)
    )
    return [lead_id for lead_id in (await conn.execute(query)).scalars() if lead_id not in exclude]


async def engaged_member_ids(conn: AsyncConnection, account_id: str, limit: int = 50) -> list[str]:
    query = (
        select(account_members.c.lead_id)
        .where(account_members.c.account_id == account_id, account_members.c.engaged)
        .order_by(account_members.c.lead_id)
        .limit(limit)
    )
    return list((await conn.execute(query)).scalars())


# --- imports and the API ---------------------------------------------------------------------


async def account_by_external_id(conn: AsyncConnection, external_ids: Sequence[str]) -> dict[str, str]:
    query = select(accounts.c.external_id, accounts.c.account_id).where(
        among(accounts.c.external_id, external_ids)
    )
    return {row.external_id: row.account_id for row in await conn.execute(query)}


async def upsert_account(conn: AsyncConnection, row: dict[str, Any]) -> list[str]:
    """Create or update an account's CRM fields and claim its domains; returns the domains
    another imported account already owns (left with it). A domain an automatic account
    started moves to this one, and that account's members are re-matched on their next event."""
    keep = {"account_id", "external_id", "name", "name_normalized", "name_block", "owner", "tier"}
    keep |= {"industry", "size", "country", "source"}
    values = {k: v for k, v in row.items() if k in keep}
    statement = insert(accounts).values(domains=[], **values)
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=["account_id"],
            set_={k: statement.excluded[k] for k in values if k not in ("account_id", "source")}
            | {"updated_at": func.now()},
        )
    )
    return await _claim_domains(conn, row["account_id"], row["domains"])


async def _claim_domains(conn: AsyncConnection, account_id: str, domains: Sequence[str]) -> list[str]:
    owners = {
        r.domain: (r.account_id, r.source)
        for r in await conn.execute(
            select(account_domains.c.domain, account_domains.c.account_id, accounts.c.source)
            .join(accounts, accounts.c.account_id == account_domains.c.account_id)
            .where(among(account_domains.c.domain, domains))
            .with_for_update(of=account_domains)
        )
    }
    taken = [d for d in domains if d in owners and owners[d][0] != account_id and owners[d][1] != "auto"]
    mine = [d for d in domains if d not in taken]
    moved_from = {owners[d][0] for d in mine if d in owners and owners[d][0] != account_id}
    await conn.execute(
        account_domains.delete().where(
            account_domains.c.account_id == account_id, account_domains.c.domain.notin_(mine)
        )
    )
    if mine:
        statement = insert(account_domains).values([{"domain": d, "account_id": account_id} for d in mine])
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=["domain"], set_={"account_id": statement.excluded.account_id}
            )
        )
    for other in sorted(moved_from):
        remaining = select(account_domains.c.domain).where(account_domains.c.account_id == other)
        left = sorted((await conn.execute(remaining)).scalars())
        await conn.execute(update(accounts).where(accounts.c.account_id == other).values(domains=left))
    if moved_from:
        await conn.execute(
            update(account_members)
            .where(among(account_members.c.account_id, moved_from))
            .values(facts_digest="")
        )
    await conn.execute(update(accounts).where(accounts.c.account_id == account_id).values(domains=mine))
    return taken


@dataclass(frozen=True)
class AccountQuery:
    domain: str | None = None
    min_score: int | None = None
    grades: tuple[str, ...] = ()
    mqa: bool | None = None
    after: tuple[int, str] | None = None  # (score, account_id) of the previous page's last
    limit: int = 50


async def find_accounts(conn: AsyncConnection, query: AccountQuery) -> Sequence[Any]:
    statement = select(accounts).order_by(accounts.c.score.desc(), accounts.c.account_id).limit(query.limit)
    if query.domain is not None:
        owned = select(account_domains.c.account_id).where(account_domains.c.domain == query.domain)
        statement = statement.where(accounts.c.account_id.in_(owned))
    if query.min_score is not None:
        statement = statement.where(accounts.c.score >= query.min_score)
    if query.grades:
        statement = statement.where(accounts.c.grade.in_(query.grades))
    if query.mqa is not None:
        statement = statement.where(accounts.c.mqa == query.mqa)
    if query.after is not None:
        score, account_id = query.after
        statement = statement.where(
            or_(accounts.c.score < score, and_(accounts.c.score == score, accounts.c.account_id > account_id))
        )
    return (await conn.execute(statement)).all()


async def account_by_id(conn: AsyncConnection, account_id: str) -> Any:
    return (await conn.execute(select(accounts).where(accounts.c.account_id == account_id))).first()


async def members_with_scores(conn: AsyncConnection, account_id: str, limit: int = 500) -> Sequence[Any]:
    query = (
        select(
            account_members.c.lead_id,
            account_members.c.matched_by,
            account_members.c.confidence,
            account_members.c.evidence,
            account_members.c.engagement,
            account_members.c.engaged,
            account_members.c.department,
            account_members.c.seniority,
            leads.c.score,
            leads.c.grade,
            leads.c.stage,
        )
        .join(leads, leads.c.lead_id == account_members.c.lead_id)
        .where(account_members.c.account_id == account_id)
        .order_by(leads.c.score.desc(), account_members.c.lead_id)
        .limit(limit)
    )
    return (await conn.execute(query)).all()


async def lead_account(conn: AsyncConnection, lead_id: str) -> Any:
    query = (
        select(
            accounts.c.account_id,
            accounts.c.name,
            accounts.c.owner,
            accounts.c.tier,
            accounts.c.score,
            accounts.c.grade,
            accounts.c.engaged_people,
            accounts.c.mqa,
            account_members.c.matched_by,
            account_members.c.confidence,
            account_members.c.evidence,
        )
        .join(accounts, accounts.c.account_id == account_members.c.account_id)
        .where(account_members.c.lead_id == lead_id)
    )
    return (await conn.execute(query)).first()


async def account_book(conn: AsyncConnection) -> AccountBook:
    """Each matched lead's account and every account's firmographics, for a backtest."""
    members = await conn.execute(
        select(account_members.c.lead_id, account_members.c.account_id).where(
            account_members.c.account_id.is_not(None)
        )
    )
    firms = await conn.execute(
        select(
            accounts.c.account_id, accounts.c.tier, accounts.c.industry, accounts.c.size, accounts.c.country
        )
    )
    return AccountBook(
        {r.lead_id: r.account_id for r in members},
        {r.account_id: Firmographics(r.tier, r.industry, r.size, r.country) for r in firms},
    )
