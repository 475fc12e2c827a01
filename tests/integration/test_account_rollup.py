"""An account's roll-up stays the sum of its members' shares, against real Postgres, through
scoring's own handlers: when identity merges a visitor who was a member into a known lead, and
when `leadflow rescore` brings leads and accounts to a changed model."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scoring import store as scoring_store
from services.scoring.accounts.handlers import import_accounts
from services.scoring.accounts.imports import AccountRecord
from services.scoring.accounts.tables import account_members, accounts
from services.scoring.config_files import load_model
from services.scoring.handlers import record_events
from services.scoring.model import ScoringModel
from services.scoring.rescore import rescore_all
from shared.envelope import utcnow
from shared.event_types import EventType
from shared.events import AccountMqaReached, AccountScored, LeadEventAccepted, MqlReached, envelope_for
from shared.settings import Settings
from shared.topics import Topics
from shared.unit_of_work import Emitted, UnitOfWork, unit_of_work

SHIPPED = load_model("config/scoring-model.yaml")
START = utcnow() - timedelta(hours=1)
VP: dict[str, Any] = {
    "title": "VP of Marketing",
    "company_size": 800,
    "industry": "Software",
    "country": "US",
}
ANALYST: dict[str, Any] = {"title": "Analyst", "country": "US"}  # grade D: never an MQL


def lead_event(
    kind: str, minute: int, *, email: str | None = None, anonymous_id: str | None = None, **traits: Any
) -> LeadEventAccepted:
    return LeadEventAccepted(
        event_id=uuid.uuid4().hex,
        type=kind,
        occurred_at=START + timedelta(minutes=minute),
        received_at=START,
        email=email,
        anonymous_id=anonymous_id,
        traits=traits,
        properties={"url": "https://leadflow.example/blog"} if kind == "page_view" else {},
    )


async def consume(
    engine: AsyncEngine, settings: Settings, model: ScoringModel, *events: LeadEventAccepted
) -> list[Emitted]:
    """One consumer batch of these events through scoring's handler; what it emitted."""
    items = [(envelope_for(e, source="test", lead_id=None, message_id=e.message_id), e) for e in events]
    async with engine.begin() as conn:
        uow = UnitOfWork(
            conn=conn, outbox=scoring_store.outbox, topics=Topics(settings.topic_prefix), source="x"
        )
        await record_events(uow, model, items)
        await uow.flush()
        return uow.emitted


async def account(engine: AsyncEngine, account_id: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = (await conn.execute(select(accounts).where(accounts.c.account_id == account_id))).one()
    return dict(row._mapping)


async def members(engine: AsyncEngine, account_id: str) -> dict[str, dict[str, Any]]:
    async with engine.connect() as conn:
        query = select(account_members).where(account_members.c.account_id == account_id)
        return {row.lead_id: dict(row._mapping) for row in await conn.execute(query)}


async def account_of(engine: AsyncEngine, email: str) -> str:
    async with engine.connect() as conn:
        query = (
            select(account_members.c.account_id)
            .join(scoring_store.leads, scoring_store.leads.c.lead_id == account_members.c.lead_id)
            .where(scoring_store.leads.c.email == email)
        )
        return str((await conn.execute(query)).scalar_one())


async def test_a_visitor_merged_into_a_known_lead_takes_its_share_out_of_the_account(
    engine: AsyncEngine, settings: Settings
) -> None:
    domain = f"acme-{uuid.uuid4().hex[:8]}.com"
    kim, visitor = f"kim@{domain}", f"anon-{uuid.uuid4().hex}"
    await consume(engine, settings, SHIPPED, lead_event("webinar_attended", 0, email=kim, **ANALYST))
    acme = await account_of(engine, kim)  # started by kim's corporate domain
    # An anonymous visitor the website trait places at the same company: a member of its own.
    await consume(
        engine,
        settings,
        SHIPPED,
        lead_event("content_download", 1, anonymous_id=visitor, website=f"https://www.{domain}/"),
        lead_event("webinar_attended", 2, anonymous_id=visitor, website=f"https://www.{domain}/"),
    )
    before = await account(engine, acme)
    assert (before["members"], before["engaged_people"]) == (2, 2)
    assert before["engagement"] == pytest.approx(15 + 25, abs=0.05)

    # The visitor identifies as kim: its history moves to kim, and its share leaves with it.
    await consume(engine, settings, SHIPPED, lead_event("page_view", 3, email=kim, anonymous_id=visitor))

    after, (kims,) = await account(engine, acme), (await members(engine, acme)).values()
    # kim's share now holds both histories (15 + 10 + 15 + 1, capped at 40), counted once:
    # not the visitor's 25 again on top, nor a second engaged person.
    assert kims["engagement"] == pytest.approx(40, abs=0.05)
    assert (after["members"], after["engaged_people"]) == (1, 1)
    assert after["engagement"] == pytest.approx(kims["engagement"], abs=0.05)
    explained = {c["rule"]: c["points"] for c in after["explanation"]}
    assert explained["account.engagement"] == pytest.approx(40, abs=0.05)
    assert "account.buying_group.people" not in explained  # one engaged person, not two


async def test_an_account_is_announced_when_its_standing_moves_not_on_every_point(
    engine: AsyncEngine, settings: Settings
) -> None:
    kim = f"kim@acme-{uuid.uuid4().hex[:8]}.com"

    async def announced(*events: LeadEventAccepted) -> list[tuple[int, int]]:
        emitted = await consume(engine, settings, SHIPPED, *events)
        scored = [
            AccountScored.model_validate(e.envelope.data)
            for e in emitted
            if e.envelope.type == EventType.ACCOUNT_SCORED
        ]
        return [(s.score, s.engaged_people) for s in scored]

    # A download makes kim an engaged member worth 10 points: news.
    assert await announced(lead_event("content_download", 0, email=kim, **ANALYST)) == [(10, 1)]
    acme = await account_of(engine, kim)
    # Two page views move the account by a point each, within the band of 10-14: stored, not
    # announced again.
    assert await announced(lead_event("page_view", 1, email=kim, **ANALYST)) == []
    assert await announced(lead_event("page_view", 2, email=kim, **ANALYST)) == []
    assert (await account(engine, acme))["score"] == 12
    # A webinar takes it to 27: another band, announced.
    assert await announced(lead_event("webinar_attended", 3, email=kim, **ANALYST)) == [(27, 1)]


def changed_model() -> ScoringModel:
    """The shipped model with each person's share capped at 5 points (below the 10 that makes a
    member engaged) and no points for a strategic tier: no account can be an MQA, a strategic
    one grades B rather than A."""
    assert SHIPPED.account is not None
    capped = SHIPPED.account.engagement.model_copy(update={"per_lead_cap": 5})
    fit = [rule for rule in SHIPPED.account.fit if rule.id != "tier.strategic"]
    account = SHIPPED.account.model_copy(update={"engagement": capped, "fit": fit})
    return SHIPPED.model_copy(update={"version": "capped-5", "account": account})


@contextlib.asynccontextmanager
async def recording(
    engine: AsyncEngine, settings: Settings, emitted: list[Emitted]
) -> AsyncIterator[UnitOfWork]:
    async with unit_of_work(
        engine, outbox=scoring_store.outbox, topics=Topics(settings.topic_prefix), source="scoring"
    ) as uow:
        yield uow
        await uow.flush()
        emitted += uow.emitted


async def test_rescore_after_a_model_change_recomputes_shares_account_scores_grades_and_mqas(
    engine: AsyncEngine, settings: Settings
) -> None:
    domain = f"globex-{uuid.uuid4().hex[:8]}.com"
    external_id = f"crm-{uuid.uuid4().hex[:8]}"
    record = AccountRecord(
        name=f"Globex {domain}", domains=[domain], owner="ana", tier="strategic", industry="Software",
        size=800, country="US", external_id=external_id,
    )  # fmt: skip
    async with recording(engine, settings, []) as uow:
        await import_accounts(uow, [record])
    capped = changed_model()
    people: dict[str, dict[str, Any]] = {f"vp@{domain}": VP, f"a1@{domain}": ANALYST, f"a2@{domain}": ANALYST}
    for email, traits in people.items():  # 25 engagement points each, in the capped model's time
        await consume(
            engine,
            settings,
            capped,
            lead_event("webinar_attended", 0, email=email, **traits),
            lead_event("content_download", 1, email=email, **traits),
        )
    globex = await account_of(engine, f"vp@{domain}")
    before = await account(engine, globex)
    assert (before["engaged_people"], before["grade"], before["mqa"]) == (0, "B", False)
    assert before["engagement"] == pytest.approx(15, abs=0.05)  # 3 people x 5

    # `leadflow rescore` under the shipped model: each member's share is 25 again and engaged,
    # the account is rebuilt from them, grades A and becomes an MQA; the VP in nurture at 25
    # points qualifies at the MQA account's lower threshold.
    emitted: list[Emitted] = []
    summary = await rescore_all(lambda: recording(engine, settings, emitted), SHIPPED)
    shares = await members(engine, globex)
    assert sorted(round(m["engagement"], 1) for m in shares.values()) == [25.0, 25.0, 25.0]
    assert all(m["engaged"] for m in shares.values())
    after = await account(engine, globex)
    assert (after["members"], after["engaged_people"], after["grade"], after["mqa"]) == (3, 3, "A", True)
    assert after["engagement"] == pytest.approx(75, abs=0.05) and after["model_version"] == SHIPPED.version
    assert summary.became_mqa >= 1 and summary.accounts_changed >= 1 and summary.became_mql >= 1
    reached = [e for e in emitted if e.envelope.type == EventType.ACCOUNT_MQA_REACHED]
    mqa = AccountMqaReached.model_validate(next(e for e in reached if e.key == globex).envelope.data)
    assert (mqa.grade, mqa.engaged_people, mqa.owner, len(mqa.member_lead_ids)) == ("A", 3, "ana", 3)
    mqls = [
        MqlReached.model_validate(e.envelope.data)
        for e in emitted
        if e.envelope.type == EventType.MQL_REACHED
    ]
    (vp,) = [m for m in mqls if m.account is not None and m.account.account_id == globex]
    assert vp.score == 25 and vp.account is not None and vp.account.owner == "ana"
    assert "mql.account_mqa" in {c.rule for c in vp.explanation}

    # And back: the capped model again takes the MQA away (announced) and grades the account B.
    emitted.clear()
    again = await rescore_all(lambda: recording(engine, settings, emitted), capped)
    final = await account(engine, globex)
    assert (final["engaged_people"], final["grade"], final["mqa"]) == (0, "B", False)
    assert final["engagement"] == pytest.approx(15, abs=0.05) and again.stopped_mqa >= 1
    scored = [
        AccountScored.model_validate(e.envelope.data)
        for e in emitted
        if e.envelope.type == EventType.ACCOUNT_SCORED and e.key == globex
    ]
    assert [(s.mqa, s.grade) for s in scored] == [(False, "B")]
