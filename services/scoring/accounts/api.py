"""The accounts API: list and read accounts (scores, members, evidence), create or replace one."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import TypeAdapter

from services.scoring.accounts import handlers
from services.scoring.accounts import store as account_store
from services.scoring.accounts.domains import registrable_domain
from services.scoring.accounts.imports import AccountRecord
from services.scoring.accounts.schemas import AccountDetail, AccountMember, AccountPage, AccountPublic
from shared.auth import Principal, Scope, require
from shared.cursors import decode_cursor, encode_cursor
from shared.field_errors import FieldError
from shared.problems import Problem
from shared.request_rules import Int32
from shared.runtime import ServiceRuntime

router = APIRouter(prefix="/v1", tags=["accounts"])
Reader = Annotated[Principal, require(Scope.ACCOUNTS_READ)]
Writer = Annotated[Principal, require(Scope.ACCOUNTS_WRITE)]
PROBLEM = {"description": "Problem (application/problem+json)"}
Grade = Literal["A", "B", "C", "D"]
AccountId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$", examples=["acct-42"])]
AFTER: TypeAdapter[tuple[int, str]] = TypeAdapter(tuple[Int32, str])


def _runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


@router.get("/accounts", response_model=AccountPage, responses={422: PROBLEM})
async def list_accounts(
    request: Request,
    _: Reader,
    domain: Annotated[
        str | None, Query(max_length=253, description="Any host or URL of the account.")
    ] = None,
    min_score: Annotated[Int32 | None, Query()] = None,
    grade: Annotated[list[Grade] | None, Query(description="Repeat for several grades.")] = None,
    mqa: Annotated[bool | None, Query(description="Only MQAs (true) or only the others (false).")] = None,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AccountPage:
    """Accounts, highest score first, filtered; paginated with `next_cursor`."""
    registrable = registrable_domain(domain) if domain else None
    if domain and registrable is None:
        field = FieldError("domain", "registrable_domain", "not a domain under a public suffix")
        raise Problem(status=422, title="Invalid request", errors=[field])
    query = account_store.AccountQuery(
        domain=registrable,
        min_score=min_score,
        grades=tuple(grade or ()),
        mqa=mqa,
        after=decode_cursor(cursor, AFTER) if cursor else None,
        limit=limit,
    )
    async with _runtime(request).engine.connect() as conn:
        rows = await account_store.find_accounts(conn, query)
    items = [AccountPublic.model_validate(dict(r._mapping)) for r in rows]
    last = items[-1] if len(items) == limit else None
    return AccountPage(items=items, next_cursor=encode_cursor(last.score, last.account_id) if last else None)


@router.get("/accounts/{account_id}", response_model=AccountDetail, responses={404: PROBLEM})
async def get_account(account_id: AccountId, request: Request, _: Reader) -> AccountDetail:
    """One account: firmographics, score, grade, MQA, why, and its members with how each matched."""
    async with _runtime(request).engine.connect() as conn:
        row = await account_store.account_by_id(conn, account_id)
        if row is None:
            raise _not_found(account_id)
        members = await account_store.members_with_scores(conn, account_id)
    return AccountDetail(
        **dict(row._mapping), members_list=[AccountMember.model_validate(dict(m._mapping)) for m in members]
    )


@router.put("/accounts/{account_id}", response_model=AccountPublic, responses={409: PROBLEM, 422: PROBLEM})
async def put_account(
    account_id: AccountId, body: AccountRecord, request: Request, _: Writer
) -> AccountPublic:
    """Create or replace an account's CRM fields (name, domains, owner, tier, firmographics)."""
    async with _runtime(request).unit_of_work() as uow:
        try:
            taken = await handlers.put_account(uow, account_id, body)
        except handlers.ExternalIdTaken:
            field = FieldError("external_id", "unique", "another account has this external id")
            raise Problem(status=409, title="External id owned by another account", errors=[field]) from None
        if taken:
            raise Problem(
                status=409,
                title="Domain owned by another account",
                errors=[
                    FieldError("domains", "domain_owned", f"{d} belongs to another account") for d in taken
                ],
            )
        row = await account_store.account_by_id(uow.conn, account_id)
    assert row is not None
    return AccountPublic.model_validate(dict(row._mapping))


def _not_found(account_id: str) -> Problem:
    return Problem(status=404, title="Account not found", detail=f"no account {account_id}")
