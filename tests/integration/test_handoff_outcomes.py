"""Closing the funnel over HTTP and Kafka: an opportunity won or lost as the CRM reports it,
a manager reopening a returned lead, and scoring and feedback following both."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from leadflow.admin.keys import create_key
from services.scoring.store import sales_decisions
from shared.auth import Scope
from shared.settings import Settings
from tests.integration.test_handoff_api import handed_off
from tests.support import ADMIN, eventually, running, tap


async def stage_of(scoring: Any, lead_id: str) -> tuple[str, int]:
    lead = (await scoring.client.get(f"/v1/leads/{lead_id}", headers=ADMIN)).json()
    return lead["stage"], lead["cycle"]


async def test_a_won_opportunity_closes_the_handoff_and_the_funnel_counts_it(settings: Settings) -> None:
    async with (
        running("scoring", settings) as scoring,
        running("handoff", settings) as handoff,
        running("feedback", settings) as feedback,
        tap(settings, settings.topic_prefix + "lead.lifecycle") as lifecycle,
    ):
        created = await handed_off(settings, lifecycle)
        url, lead_id = f"/v1/handoffs/{created.data['handoff_id']}", created.lead_id or ""
        too_early = await handoff.client.post(
            f"{url}/outcome", json={"outcome": "lost", "reason": "x"}, headers=ADMIN
        )
        assert too_early.status_code == 409 and too_early.json()["current_stage"] == "mql"
        for step in ("accept", "qualify", "opportunity"):
            assert (await handoff.client.post(f"{url}/{step}", headers=ADMIN)).status_code == 200
        assert (await handoff.client.get(url, headers=ADMIN)).json()["allowed_actions"] == ["outcome"]

        no_amount = await handoff.client.post(f"{url}/outcome", json={"outcome": "won"}, headers=ADMIN)
        assert no_amount.status_code == 422
        assert [e["field"] for e in no_amount.json()["errors"]] == ["amount"]
        bad_currency = {"outcome": "won", "amount": "100", "currency": "euro"}
        assert (
            await handoff.client.post(f"{url}/outcome", json=bad_currency, headers=ADMIN)
        ).status_code == 422

        deal = {"outcome": "won", "amount": "48000.50", "currency": "EUR"}
        closed = await handoff.client.post(f"{url}/outcome", json=deal, headers=ADMIN)
        assert closed.status_code == 200
        assert (closed.json()["stage"], closed.json()["allowed_actions"]) == ("won", [])
        [won] = await lifecycle.wait_for("lead.opportunity_won")
        assert (won.data["amount"], won.data["currency"], won.lead_id) == ("48000.50", "EUR", lead_id)
        again = await handoff.client.post(f"{url}/outcome", json=deal, headers=ADMIN)
        assert again.status_code == 409  # final

        assert await eventually(lambda: _is(stage_of(scoring, lead_id), ("won", 1)))

        async def funnel() -> dict[str, Any] | None:
            answer = await feedback.client.get("/v1/metrics/funnel", headers=ADMIN, params={"cohorts": 1})
            [cohort] = answer.json()["items"]
            return cohort if cohort["won"] >= 1 else None

        cohort = await eventually(funnel)
        assert cohort["win_rate"] is not None and cohort["win_rate"] > 0
        assert cohort["conversion"]["sqo_to_won"] is not None
        assert cohort["time_to_close"]["count"] >= 1 and cohort["stage_seconds"]["sqo"]["count"] >= 1


async def test_a_lost_opportunity_says_why(settings: Settings) -> None:
    async with (
        running("scoring", settings),
        running("handoff", settings) as handoff,
        tap(settings, settings.topic_prefix + "lead.lifecycle") as lifecycle,
    ):
        created = await handed_off(settings, lifecycle)
        url = f"/v1/handoffs/{created.data['handoff_id']}"
        for step in ("accept", "qualify", "opportunity"):
            await handoff.client.post(f"{url}/{step}", headers=ADMIN)
        no_reason = await handoff.client.post(f"{url}/outcome", json={"outcome": "lost"}, headers=ADMIN)
        assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "reason"
        lost = await handoff.client.post(
            f"{url}/outcome", json={"outcome": "lost", "reason": "went with a competitor"}, headers=ADMIN
        )
        assert lost.status_code == 200 and lost.json()["stage"] == "lost"
        [event] = await lifecycle.wait_for("lead.opportunity_lost")
        assert event.data["reason"] == "went with a competitor"


async def test_a_manager_reopens_a_returned_lead_and_scoring_takes_it_back_from_nurture(
    settings: Settings,
) -> None:
    async with (
        running("scoring", settings) as scoring,
        running("handoff", settings) as handoff,
        tap(settings, settings.topic_prefix + "lead.lifecycle") as lifecycle,
    ):
        created = await handed_off(settings, lifecycle)
        url, lead_id = f"/v1/handoffs/{created.data['handoff_id']}", created.lead_id or ""
        listed_only = await handoff.client.post(
            f"{url}/reject", json={"reason": "too_expensive"}, headers=ADMIN
        )
        assert listed_only.status_code == 422  # not on config/return-reasons.yaml
        rejected = await handoff.client.post(f"{url}/reject", json={"reason": "not_ready"}, headers=ADMIN)
        assert rejected.status_code == 200 and "reopen" in rejected.json()["allowed_actions"]
        assert await eventually(lambda: _is(stage_of(scoring, lead_id), ("nurture", 2)))

        rep, _ = await create_key(
            settings,
            name="rep",
            scopes=[Scope.HANDOFFS_READ, Scope.HANDOFFS_WRITE],
            owner=created.data["owner"],
        )
        as_rep = await handoff.client.post(
            f"{url}/reopen", json={"reason": "mistake"}, headers={"X-API-Key": rep}
        )
        assert as_rep.status_code == 403  # managers and admins only
        no_reason = await handoff.client.post(f"{url}/reopen", headers=ADMIN)
        assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "reason"

        reopened = await handoff.client.post(
            f"{url}/reopen", json={"reason": "rejected by mistake"}, headers=ADMIN
        )
        assert reopened.status_code == 200
        body = reopened.json()
        assert body["stage"] == "mql" and body["qualify_by"] is None
        # A new deadline from now (in business hours, it may fall where the first one did).
        assert datetime.fromisoformat(body["decide_by"]) >= datetime.fromisoformat(created.data["decide_by"])
        [event] = await lifecycle.wait_for("handoff.reopened")
        assert (event.data["from_stage"], event.data["to_stage"], event.data["cycle"]) == (
            "returned",
            "mql",
            1,
        )
        assert await eventually(lambda: _is(stage_of(scoring, lead_id), ("mql", 1)))
        history = (await handoff.client.get(f"{url}/history", headers=ADMIN)).json()
        assert [h["action"] for h in history] == ["create", "reject", "reopen"]
        # Reopened, it is an ordinary MQL again: sales can accept it.
        assert (await handoff.client.post(f"{url}/accept", headers=ADMIN)).status_code == 200
        assert await eventually(lambda: _is(stage_of(scoring, lead_id), ("sal", 1)))

        # Scoring kept the handoff and every decision on it, in order: what training learns from.
        async def decisions() -> list[str] | None:
            async with scoring.runtime.engine.connect() as conn:
                rows = await conn.execute(
                    select(sales_decisions.c.event_type)
                    .where(sales_decisions.c.lead_id == lead_id)
                    .order_by(sales_decisions.c.at)
                )
                kinds = [row.event_type for row in rows]
            return kinds if len(kinds) == 4 else None

        assert await eventually(decisions) == [
            "handoff.created",
            "lead.rejected",
            "handoff.reopened",
            "lead.sal_accepted",
        ]


async def _is(answer: Any, expected: tuple[str, int]) -> bool:
    return await answer == expected
