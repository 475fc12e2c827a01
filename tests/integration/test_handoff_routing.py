"""Routing against real Kafka and Postgres: account owners with the account on the handoff, the
queue item and the webhook; out-of-office set over the API with a backup; and, with two handoff
instances running, capacity never exceeded, away reps passed over, and the first claim winning."""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import orjson
import yaml

from leadflow.admin.keys import create_key
from leadflow.admin.migrations import migrate_all
from services.handoff.schemas import HandoffPublic
from shared.auth import Scope
from shared.envelope import Envelope, utcnow
from shared.events import AccountContext, MqlReached, ScoreContribution, envelope_for
from shared.settings import Settings
from shared.signing import verify
from tests.conftest import ROOT
from tests.integration.test_pipeline_services import publish
from tests.support import (
    ADMIN,
    eventually,
    loopback_client,
    running,
    service_ready,
    start_service,
    tap,
    webhook_receiver,
)

ACME = AccountContext(
    account_id="acc-acme",
    name="Acme Robotics",
    owner="sophie.laurent",
    tier="strategic",
    score=82,
    grade="A",
    engaged_people=3,
    matched_by="domain",
    confidence=1.0,
)


def signed(secret: str, body: bytes, signature: str) -> bool:
    return verify(secret, body, signature, now=int(time.time()))


def mql(
    *, account: AccountContext | None = None, country: str = "US", at: datetime | None = None
) -> Envelope:
    """A lead's `lead.mql_reached` as scoring publishes it, with the account scoring matched."""
    lead_id = str(uuid.uuid4())
    data = MqlReached(
        cycle=1,
        score=71,
        grade="A",
        model_version="test",
        explanation=[ScoreContribution(rule="engagement.demo", kind="engagement", points=40, detail="demo")],
        traits={"country": country, "company_size": 300},
        account=account,
    )
    envelope = envelope_for(data, source="scoring", lead_id=lead_id, occurred_at=at)
    return envelope.model_copy(update={"produced_at": at}) if at is not None else envelope


async def test_the_account_owner_gets_the_handoff_with_the_account_and_their_backup_while_away(
    settings: Settings,
) -> None:
    async with (
        running("handoff", settings) as handoff,
        tap(settings, settings.topic_prefix + "lead.lifecycle") as lifecycle,
    ):
        with webhook_receiver(signed) as receiver:
            made = await handoff.client.post(
                "/v1/webhooks", json={"url": receiver.url, "event_types": ["handoff.created"]}, headers=ADMIN
            )
            receiver.secret = made.json()["secret"]

            first = mql(account=ACME)
            await publish(settings, [first], topic="lead.lifecycle")
            [created] = await lifecycle.wait_for("handoff.created", lambda e: e.lead_id == first.lead_id)
            assert created.data["owner"] == "sophie.laurent"
            assert (created.data["routing_reason"], created.data["routing_rule"]) == (
                "account_owner",
                "account-owner",
            )
            assert created.data["account"] == ACME.model_dump()

            url = f"/v1/handoffs/{created.data['handoff_id']}"
            item = HandoffPublic.model_validate((await handoff.client.get(url, headers=ADMIN)).json())
            assert item.account == ACME and item.routing_reason == "account_owner"
            queue = (
                await handoff.client.get("/v1/handoffs", params={"owner": "sophie.laurent"}, headers=ADMIN)
            ).json()
            assert queue["items"][0]["account"]["name"] == "Acme Robotics"
            [history] = (await handoff.client.get(f"{url}/history", headers=ADMIN)).json()
            assert (history["action"], history["reason"]) == ("create", "account_owner")

            await eventually(lambda: receiver.received or None, timeout=20)
            delivered = orjson.loads(receiver.received[0][1])
            assert delivered["data"]["account"]["owner"] == "sophie.laurent"
            assert delivered["data"]["account"]["matched_by"] == "domain"

        # A lead with a gmail address whom scoring matched to the account by name and country
        # (issue 15's end-to-end story): the same owner, and the handoff says how it was matched.
        by_name = ACME.model_copy(update={"matched_by": "name_close+country", "confidence": 0.86})
        gmail = mql(account=by_name, country="DE")
        await publish(settings, [gmail], topic="lead.lifecycle")
        [matched] = await lifecycle.wait_for("handoff.created", lambda e: e.lead_id == gmail.lead_id)
        assert (matched.data["owner"], matched.data["routing_reason"]) == ("sophie.laurent", "account_owner")
        assert matched.data["account"]["matched_by"] == "name_close+country"

        # sophie sets herself out of office with her own key, naming a backup.
        sophie, _ = await create_key(
            settings,
            name="sophie",
            scopes=[Scope.HANDOFFS_READ, Scope.HANDOFFS_WRITE],
            owner="sophie.laurent",
        )
        as_sophie = {"X-API-Key": sophie}
        window = {"start": utcnow().isoformat(), "end": (utcnow() + timedelta(days=2)).isoformat()}
        backwards = {"start": window["end"], "end": window["start"]}
        refused = await handoff.client.put(
            "/v1/reps/sophie.laurent/availability", json={"out_of_office": [backwards]}, headers=as_sophie
        )
        assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
        assert [(e["field"], e["rule"]) for e in refused.json()["errors"]] == [
            ("out_of_office.0.end", "after_start")
        ]
        # Least privilege: a rep's key claims for its own rep only, and only from queues it sees.
        claim_url = f"/v1/handoffs/{created.data['handoff_id']}/claim"
        for_another = await handoff.client.post(claim_url, json={"rep": "david.chen"}, headers=as_sophie)
        assert for_another.status_code == 403
        julien, _ = await create_key(
            settings, name="julien", scopes=[Scope.HANDOFFS_READ, Scope.HANDOFFS_WRITE], owner="julien.moreau"
        )
        out_of_sight = await handoff.client.post(claim_url, headers={"X-API-Key": julien})
        assert out_of_sight.status_code == 404  # sophie's, never in a queue julien sees: ids do not leak
        read_only, _ = await create_key(
            settings, name="ro", scopes=[Scope.HANDOFFS_READ], owner="julien.moreau"
        )
        assert (await handoff.client.post(claim_url, headers={"X-API-Key": read_only})).status_code == 403
        someone_else = await handoff.client.put(
            "/v1/reps/david.chen/availability", json={"out_of_office": [window]}, headers=as_sophie
        )
        assert someone_else.status_code == 403
        away = await handoff.client.put(
            "/v1/reps/sophie.laurent/availability",
            json={"out_of_office": [{**window, "backup": "maya.johnson"}]},
            headers=as_sophie,
        )
        assert away.status_code == 200 and away.json()["away_now"] is True

        second = mql(account=ACME, at=utcnow() + timedelta(minutes=1))
        await publish(settings, [second], topic="lead.lifecycle")
        [covered] = await lifecycle.wait_for("handoff.created", lambda e: e.lead_id == second.lead_id)
        assert (covered.data["owner"], covered.data["routing_reason"]) == ("maya.johnson", "ooo_backup")
        assert covered.data["routing_note"].startswith("sophie.laurent away until")
        history = (
            await handoff.client.get(f"/v1/handoffs/{covered.data['handoff_id']}/history", headers=ADMIN)
        ).json()
        assert (history[0]["reason"], history[0]["note"]) == ("ooo_backup", covered.data["routing_note"])
        reps = {r["rep"]: r for r in (await handoff.client.get("/v1/reps", headers=ADMIN)).json()}
        assert reps["sophie.laurent"]["away_now"] is True and reps["sophie.laurent"]["open_handoffs"] == 2


# --- two handoff instances ------------------------------------------------------------------------

CAP = 4
REPS = ["ann", "bob", "cid"]
AWAY = ["dan", "eve"]  # out of office for the whole run: they receive nothing, so they have room to claim
MQLS = 40


def routing_file(folder: Path) -> Path:
    config = folder / "config"
    shutil.copytree(ROOT / "config", config)
    window = {"start": "2026-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z"}
    routing = {
        "teams": [{"name": "sales", "members": [*REPS, *AWAY]}],
        "reps": {
            "ann": {"weight": 2, "capacity": CAP},
            "bob": {"capacity": CAP},
            "cid": {"capacity": CAP},
            **{rep: {"capacity": 2, "out_of_office": [window]} for rep in AWAY},
        },
        "rules": [{"name": "everyone", "assign": {"team": "sales"}}],
    }
    (config / "routing.yaml").write_text(yaml.safe_dump(routing))
    return config


async def test_two_instances_never_exceed_capacity_skip_away_reps_and_let_the_first_claim_win(
    settings: Settings, tmp_path: Path
) -> None:
    await migrate_all(settings)
    config_dir = routing_file(tmp_path)
    logs = [(tmp_path / f"handoff-{i}.log").open("ab") for i in range(2)]
    instances = [start_service("handoff", settings, config_dir=config_dir, log=log) for log in logs]
    try:
        for _, url in instances:
            await eventually(lambda url=url: service_ready(url), timeout=60)
        await asyncio.sleep(2)  # both in the group, each with partitions of its own
        # Published at once over every partition: both instances route into the one team together.
        await publish(settings, [mql() for _ in range(MQLS)], topic="lead.lifecycle")
        dsn = settings.database_url.replace("postgresql+asyncpg://", "postgresql://")
        owners = await eventually(lambda: _owners_once(dsn, MQLS), timeout=60)
        assert {rep: owners.get(rep, 0) for rep in [*REPS, *AWAY]} == {
            "ann": CAP,
            "bob": CAP,
            "cid": CAP,
            "dan": 0,
            "eve": 0,
        }
        assert owners["sales"] == MQLS - 3 * CAP  # the rest wait in the team's queue
        assert await _reasons(dsn) >= {"round_robin", "ooo_skipped", "capacity_overflow"}

        # dan and eve claim the same queued handoffs at once, each through another instance.
        keys = [
            (
                await create_key(
                    settings, name=rep, scopes=[Scope.HANDOFFS_READ, Scope.HANDOFFS_WRITE], owner=rep
                )
            )[0]
            for rep in AWAY
        ]
        queued = await _queued(dsn, 3)
        async with loopback_client(timeout=10) as http:
            outcomes = []
            for handoff_id in queued:
                answers = await asyncio.gather(
                    *(
                        http.post(f"{url}/v1/handoffs/{handoff_id}/claim", headers={"X-API-Key": key})
                        for (_, url), key in zip(instances, keys, strict=True)
                    )
                )
                outcomes.append(sorted(a.status_code for a in answers))
                [lost] = [a for a in answers if a.status_code == 409]
                assert lost.headers["content-type"] == "application/problem+json"
                assert lost.json()["rule"] in {"already_claimed", "at_capacity"}
            assert outcomes[:2] == [[200, 409]] * 2
        final = await _owners_once(dsn, MQLS)
        assert final is not None and final.get("dan", 0) + final.get("eve", 0) <= 2 * 2
        assert all(final.get(rep, 0) <= 2 for rep in AWAY)  # a claim respects capacity too
    finally:
        for process, _ in instances:
            process.terminate()
        for process, _ in instances:
            process.wait(timeout=30)


async def _owners_once(dsn: str, expected: int) -> dict[str, int] | None:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT owner, count(*) AS n FROM handoff.handoffs GROUP BY owner")
    finally:
        await conn.close()
    owners = {r["owner"]: int(r["n"]) for r in rows}
    return owners if sum(owners.values()) >= expected else None


async def _reasons(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return {r["reason"] for r in await conn.fetch("SELECT DISTINCT reason FROM handoff.handoff_history")}
    finally:
        await conn.close()


async def _queued(dsn: str, count: int) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT handoff_id FROM handoff.handoffs WHERE owner = 'sales' ORDER BY handoff_id LIMIT $1",
            count,
        )
    finally:
        await conn.close()
    return [r["handoff_id"] for r in rows]
