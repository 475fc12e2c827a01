"""Accounts in scoring, against the real broker and Postgres: a CRM import, leads matched by domain
and by name, the roll-up making an MQA, and the best-fit lead qualifying with its account."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from leadflow.admin.accounts_import import import_file
from leadflow.admin.backtest import backtest
from leadflow.admin.keys import create_key
from services.scoring.accounts.imports import parse_export
from services.scoring.config_files import load_model
from shared.auth import Scope
from shared.envelope import utcnow
from shared.event_types import EventType
from shared.events import AccountMqaReached, MqlReached
from shared.settings import Settings
from tests.integration.test_pipeline_services import intake_envelopes, lead_by_email, publish
from tests.support import ADMIN, eventually, now_minus, opened, running, tap

VP = {"title": "VP of Marketing", "department": "Marketing", "company_size": 800, "industry": "Software"}
ANALYST = {"title": "Analyst"}  # grade D: engaged, but no MQL even at an MQA account


def crm_export(domain: str) -> str:
    return (
        "Account ID,Account Name,Website,Account Owner,Tier,Industry,Employees,Billing Country\n"
        f'crm-1,"Acme Rockets, Inc.",https://www.{domain}/,ana,strategic,Software,800,GB\n'
        f"crm-2,Acme Analytics Ltd,https://analytics-{domain},ben,commercial,Retail,40,GB\n"
    )


def event(
    email: str, kind: str, traits: dict[str, Any], props: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "event_id": f"e-{uuid.uuid4().hex}",
        "type": kind,
        "occurred_at": now_minus(1),
        "email": email,
        "traits": {**traits, "country": "GB"},
        "properties": props or {},
    }


async def test_an_account_of_three_engaged_people_becomes_an_mqa_and_qualifies_its_best_fit_lead(
    settings: Settings, tmp_path: Path
) -> None:
    domain = f"acme-rockets-{uuid.uuid4().hex[:6]}.co.uk"
    export = tmp_path / "accounts.csv"
    export.write_text(crm_export(domain))
    lifecycle_topic = settings.topic_prefix + "lead.lifecycle"
    async with running("scoring", settings) as scoring, tap(settings, lifecycle_topic) as lifecycle:
        records = parse_export(export.read_text(), json_lines=False)
        first = await import_file(settings, records)
        again = await import_file(settings, records)  # idempotent by external id
        assert (first.created, again.created, again.updated) == (2, 0, 2)
        listed = (
            await scoring.client.get("/v1/accounts", params={"domain": f"eu.{domain}"}, headers=ADMIN)
        ).json()
        (acme,) = listed["items"]
        assert (acme["name"], acme["owner"], acme["tier"], acme["domains"]) == (
            "Acme Rockets, Inc.",
            "ana",
            "strategic",
            [domain],
        )

        # Each of three people asks for a demo: 30 points, below the lead MQL threshold of 50.
        vp, analysts = f"vp@{domain}", [f"a1@eu.{domain}", f"a2@{domain}"]
        await publish(settings, intake_envelopes([event(vp, "demo_request", VP, {"form_id": "demo"})]))
        await eventually(lambda: _account(scoring.client, acme["account_id"], members=1))
        assert not lifecycle.envelopes(EventType.MQL_REACHED)
        await publish(
            settings,
            intake_envelopes([event(a, "demo_request", ANALYST, {"form_id": "demo"}) for a in analysts]),
        )

        (mqa,) = await lifecycle.wait_for(EventType.ACCOUNT_MQA_REACHED)
        reached = AccountMqaReached.model_validate(mqa.data)
        assert (reached.account_id, reached.owner, reached.engaged_people, reached.grade) == (
            acme["account_id"],
            "ana",
            3,
            "A",
        )
        assert len(reached.member_lead_ids) == 3
        assert {c.rule for c in reached.explanation} >= {"account.engagement", "account.buying_group.people"}

        (mql,) = await opened(settings, await lifecycle.wait_for(EventType.MQL_REACHED))
        qualified = MqlReached.model_validate(mql.data)
        assert qualified.email == vp and qualified.score == 30
        assert qualified.account is not None
        assert (qualified.account.account_id, qualified.account.owner, qualified.account.matched_by) == (
            acme["account_id"],
            "ana",
            "domain",
        )
        assert qualified.account.engaged_people == 3 and qualified.account.confidence == 1.0
        reason = next(c for c in qualified.explanation if c.rule == "mql.account_mqa")
        assert "score 25 instead of 50" in reason.detail

        # A gmail address says nothing; the company name close to the account's, in its country, does.
        cmo = f"cmo.{uuid.uuid4().hex[:6]}@gmail.com"
        await publish(
            settings,
            intake_envelopes([event(cmo, "page_view", {"title": "Chief Marketing Officer"}, {"url": "/"})]),
        )
        await eventually(lambda: lead_by_email(scoring.client, cmo))  # scored, matched to nothing
        cmo_traits = {
            "title": "Chief Marketing Officer",
            "company": "Acme Rocket",
            **{k: VP[k] for k in ("company_size", "industry")},
        }
        await publish(
            settings,
            intake_envelopes(
                [
                    event(cmo, "demo_request", cmo_traits, {"form_id": "demo"}),
                    event(cmo, "webinar_attended", cmo_traits),
                    event(cmo, "content_download", cmo_traits, {"content_id": "guide"}),
                ]
            ),
        )
        # Its first event matched nothing; the company and country that came next did: a change.
        (changed,) = await lifecycle.wait_for(
            EventType.LEAD_ACCOUNT_CHANGED, lambda e: e.data["account_id"] == acme["account_id"]
        )
        assert changed.data == {
            "account_id": acme["account_id"],
            "previous_account_id": None,
            "matched_by": "name_close+country",
            "confidence": changed.data["confidence"],
        }
        second = await opened(settings, await lifecycle.wait_for(EventType.MQL_REACHED, count=2))
        by_name = MqlReached.model_validate(next(e for e in second if e.data["email"] == cmo).data)
        assert by_name.account is not None and by_name.account.matched_by == "name_close+country"
        assert by_name.account.owner == "ana" and 0.5 < by_name.account.confidence < 0.9

        detail = await _account(scoring.client, acme["account_id"], members=4)
        assert detail["mqa"] and detail["grade"] == "A" and detail["engaged_people"] == 4
        members = {m["lead_id"]: m for m in detail["members_list"]}
        assert sorted(m["matched_by"] for m in members.values()) == [
            "domain",
            "domain",
            "domain",
            "name_close+country",
        ]
        assert sorted(m["stage"] for m in members.values()) == ["mql", "mql", "nurture", "nurture"]
        lead = (await scoring.client.get(f"/v1/leads/{qualified_lead(members, 'mql')}", headers=ADMIN)).json()
        assert lead["account"]["account_id"] == acme["account_id"] and lead["account"]["mqa"]

        only_mqas = (await scoring.client.get("/v1/accounts", params={"mqa": "true"}, headers=ADMIN)).json()
        assert [a["account_id"] for a in only_mqas["items"]] == [acme["account_id"]]
        other = (
            await scoring.client.get("/v1/accounts", params={"mqa": "false", "grade": "D"}, headers=ADMIN)
        ).json()
        assert [a["name"] for a in other["items"]] == ["Acme Analytics Ltd"]  # the near-miss name took nobody

        # `leadflow backtest` counts the MQA; a candidate asking for five engaged people loses it.
        model = load_model(settings.config_file("scoring-model.yaml"))
        assert model.account is not None
        stricter_mqa = model.account.mqa.model_copy(update={"min_engaged_people": 5})
        stricter = model.model_copy(
            update={
                "version": "five-people",
                "account": model.account.model_copy(update={"mqa": stricter_mqa}),
            }
        )
        report = await backtest(
            settings, current=model, candidate=stricter, since=utcnow() - timedelta(days=30)
        )
        assert report.accounts is not None
        assert (report.accounts.mqas_current, report.accounts.mqas_candidate) == (1, 0)
        assert report.accounts.no_longer_qualifying == 1


async def test_accounts_are_read_and_written_under_their_own_scopes(settings: Settings) -> None:
    async with running("scoring", settings) as scoring:
        reader, _ = await create_key(settings, name="crm-read", scopes=[Scope.ACCOUNTS_READ], owner=None)
        leads_only, _ = await create_key(settings, name="leads", scopes=[Scope.LEADS_READ], owner=None)
        writer, _ = await create_key(settings, name="crm-sync", scopes=[Scope.ACCOUNTS_WRITE], owner=None)
        body = {
            "name": "Initech GmbH",
            "domains": ["initech.de", "https://www.initech.com"],
            "owner": "cy",
            "size": 1500,
        }
        refused = await scoring.client.put("/v1/accounts/crm-9", json=body, headers={"X-API-Key": reader})
        assert refused.status_code == 403
        put = await scoring.client.put("/v1/accounts/crm-9", json=body, headers={"X-API-Key": writer})
        assert put.status_code == 200 and put.json()["domains"] == ["initech.com", "initech.de"]
        assert put.json()["size"] == 1500 and put.json()["source"] == "api"
        assert (
            await scoring.client.get("/v1/accounts", headers={"X-API-Key": leads_only})
        ).status_code == 403
        got = await scoring.client.get("/v1/accounts/crm-9", headers={"X-API-Key": reader})
        assert got.status_code == 200 and got.json()["members_list"] == []

        clash = await scoring.client.put(
            "/v1/accounts/crm-10", json={"name": "Other", "domains": ["initech.de"]}, headers=ADMIN
        )
        assert clash.status_code == 409 and clash.json()["errors"][0]["field"] == "domains"
        assert (
            await scoring.client.get("/v1/accounts/crm-10", headers=ADMIN)
        ).status_code == 404  # rolled back
        bad = await scoring.client.put(
            "/v1/accounts/crm-11", json={"name": "X", "country": "Germany"}, headers=ADMIN
        )
        assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
        nodomain = await scoring.client.get("/v1/accounts", params={"domain": "co.uk"}, headers=ADMIN)
        assert nodomain.status_code == 422 and nodomain.json()["errors"][0]["field"] == "domain"


def qualified_lead(members: dict[str, dict[str, Any]], stage: str) -> str:
    return next(lead_id for lead_id, m in members.items() if m["stage"] == stage)


async def _account(client: Any, account_id: str, *, members: int) -> dict[str, Any] | None:
    detail = (await client.get(f"/v1/accounts/{account_id}", headers=ADMIN)).json()
    return detail if len(detail.get("members_list", [])) == members else None
