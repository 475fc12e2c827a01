"""Accounts end to end on the running stack: a CRM export imported with `leadflow accounts import`,
three people of the account engaging over intake's HTTP API, the account becoming an MQA, and
the best-fit lead reaching MQL with its account (owner, score, how matched); a gmail lead who
names the company, in its country, joins the same account by name.

Then both leads are handed off to the account's owner, the account on the handoff."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

from shared.events import AccountMqaReached, MqlReached
from tests.conftest import ROOT
from tests.e2e.conftest import DevStack
from tests.support import now_minus, opened, tap


def person(email: str, kind: str, traits: dict[str, Any], **props: Any) -> dict[str, Any]:
    return {
        "event_id": f"e-{uuid.uuid4().hex}",
        "type": kind,
        "occurred_at": now_minus(1),
        "email": email,
        "traits": traits,
        "properties": props,
    }


async def import_accounts(stack: DevStack, export: Path) -> str:
    """`leadflow accounts import FILE` against the stack's database, as an operator runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    env.update(
        LEADFLOW_DATABASE_URL=stack.settings.database_url,
        LEADFLOW_KAFKA_BOOTSTRAP=stack.settings.kafka_bootstrap,
        LEADFLOW_TOPIC_PREFIX=stack.settings.topic_prefix,
        LEADFLOW_CONFIG_DIR=str(ROOT / "config"),
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "leadflow", "accounts", "import", str(export), env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, out.decode()
    return out.decode()


async def test_an_mqa_account_hands_its_best_fit_lead_over_with_the_account_and_its_owner(
    stack: DevStack, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    domain = f"orbital-{uuid.uuid4().hex[:6]}.com.au"
    export = tmp_path / "crm-accounts.jsonl"
    export.write_text(
        f'{{"Account ID": "sf-001", "Account Name": "Orbital Freight Pty Ltd", "Website": "{domain}", '
        '"Account Owner": "sophie.laurent", "Tier": "strategic", "Industry": "Software", '
        '"Employees": "1,200", "Billing Country": "AU"}\n'
    )
    assert "1 new" in await import_accounts(stack, export)
    assert "0 new, 1 updated" in await import_accounts(stack, export)  # the same export again: no change

    vp = {"title": "VP Marketing", "department": "Marketing", "company_size": 1200, "industry": "Software"}
    analyst = {"title": "Data Analyst", "department": "Finance"}
    people = [(f"vp@{domain}", vp), (f"ali@apac.{domain}", analyst), (f"bo@{domain}", analyst)]
    intake = f"{stack.url('intake')}/v1/events/batch"
    async with tap(stack.settings, stack.settings.topic_prefix + "lead.lifecycle") as lifecycle:
        for email, traits in people:  # each asks for a demo: 30 points, below the MQL threshold of 50
            events = [person(email, "demo_request", {**traits, "country": "AU"}, form_id="demo")]
            posted = await http.post(intake, json={"events": events}, headers=stack.headers)
            assert posted.status_code == 202

        [mqa] = await lifecycle.wait_for("account.mqa_reached", timeout=30)
        reached = AccountMqaReached.model_validate(mqa.data)
        assert (reached.owner, reached.grade, reached.engaged_people) == ("sophie.laurent", "A", 3)

        [mql] = await opened(stack.settings, await lifecycle.wait_for("lead.mql_reached", timeout=30))
        best_fit = MqlReached.model_validate(mql.data)
        assert best_fit.email == f"vp@{domain}" and best_fit.score < 50
        assert best_fit.account is not None
        account = best_fit.account
        assert (account.account_id, account.name, account.owner, account.tier) == (
            reached.account_id,
            "Orbital Freight Pty Ltd",
            "sophie.laurent",
            "strategic",
        )
        assert (account.matched_by, account.confidence, account.engaged_people) == ("domain", 1.0, 3)
        assert any(c.rule == "mql.account_mqa" for c in best_fit.explanation)

        cmo = f"cmo.{uuid.uuid4().hex[:6]}@gmail.com"
        traits = {**vp, "title": "Chief Marketing Officer", "company": "Orbital Freight", "country": "AU"}
        events = [
            person(cmo, "demo_request", traits, form_id="demo"),
            person(cmo, "webinar_attended", traits, webinar_id="w-1"),
            person(cmo, "content_download", traits, content_id="guide"),
        ]
        assert (await http.post(intake, json={"events": events}, headers=stack.headers)).status_code == 202
        mqls = await opened(stack.settings, await lifecycle.wait_for("lead.mql_reached", count=2, timeout=30))
        by_name = MqlReached.model_validate(next(e for e in mqls if e.data["email"] == cmo).data)
        assert by_name.account is not None
        assert (by_name.account.account_id, by_name.account.owner) == (reached.account_id, "sophie.laurent")
        assert by_name.account.matched_by == "name_exact+country"  # "Pty Ltd" is a legal suffix

        shown = (
            await http.get(f"{stack.url('scoring')}/v1/accounts/{reached.account_id}", headers=stack.headers)
        ).json()
        assert shown["mqa"] and len(shown["members_list"]) == 4
        lead = (
            await http.get(f"{stack.url('scoring')}/v1/leads/{mql.lead_id}", headers=stack.headers)
        ).json()
        assert lead["account"]["owner"] == "sophie.laurent" and lead["account"]["matched_by"] == "domain"

        # handoff: both leads go to the account's owner, with the account on the handoff.
        created = await lifecycle.wait_for("handoff.created", count=2, timeout=30)
        handed = {e.lead_id: e.data for e in created}
        assert set(handed) == {mql.lead_id, next(e.lead_id for e in mqls if e.data["email"] == cmo)}
        for handoff in handed.values():
            assert (handoff["owner"], handoff["routing_reason"]) == ("sophie.laurent", "account_owner")
            assert handoff["account"]["account_id"] == reached.account_id
