"""feedback by account: return rates and the funnel of leads at matched accounts against unmatched
ones, and per account tier, from the account on handoff.created; a rebuild reproduces them."""

from __future__ import annotations

from datetime import timedelta

from services.feedback import store
from services.feedback.rebuild import rebuild
from shared.envelope import Envelope, utcnow
from shared.settings import Settings
from tests.integration.test_pipeline_services import publish
from tests.lifecycle import account, created, moved
from tests.support import ADMIN, eventually, running


def handoffs() -> list[Envelope]:
    """10 leads at strategic accounts (1 returned), 5 at smb ones (1 returned), 10 unmatched
    (4 returned), and 1 handed off before handoffs carried accounts (unknown)."""
    at = utcnow() - timedelta(hours=1)
    strategic = [created(n, at=at, account=account("strategic")) for n in range(10)]
    smb = [created(n, at=at, account=account("smb", account_id="acc-2")) for n in range(10, 15)]
    unmatched = [created(n, at=at, account=None) for n in range(15, 25)]
    old = created(25, at=at)
    old.data.pop("account")  # what handoff published before this field existed
    returned = [0, 10, 15, 16, 17, 18]
    decisions = [moved(n, "lead.rejected", reason="not_a_fit") for n in returned]
    decisions += [moved(n, "lead.sal_accepted") for n in range(26) if n not in returned]
    decisions += [moved(n, "lead.sql_qualified") for n in (1, 2, 3)]
    return [*strategic, *smb, *unmatched, old, *decisions]


async def get(client, path: str, **params) -> dict:  # type: ignore[no-untyped-def]
    response = await client.get(path, params=params, headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


async def test_return_rate_and_funnel_by_account_match_and_tier_survive_a_rebuild(settings: Settings) -> None:
    async with running("feedback", settings) as feedback:
        await publish(settings, handoffs(), topic="lead.lifecycle")

        async def decided() -> dict | None:
            overall = await get(feedback.client, "/v1/metrics/return-rate")
            return overall if overall["denominator"] == 26 else None

        await eventually(decided)
        matched = await get(feedback.client, "/v1/metrics/return-rate/groups", by="account_matched")
        assert [(i["group"], i["numerator"], i["denominator"]) for i in matched["items"]] == [
            ("unmatched", 4, 10),
            ("matched", 2, 15),
            (None, 0, 1),
        ]
        tiers = await get(feedback.client, "/v1/metrics/return-rate/groups", by="account_tier")
        assert [(i["group"], i["numerator"], i["denominator"]) for i in tiers["items"]] == [
            ("smb", 1, 5),
            ("strategic", 1, 10),
            (None, 4, 11),
        ]

        funnel = await get(feedback.client, "/v1/metrics/funnel/groups", by="account_matched", cohorts=2)
        figures = {i["group"]: (i["mql"], i["sal"], i["sql"], i["returned"]) for i in funnel["items"]}
        assert figures == {"matched": (15, 13, 3, 2), "unmatched": (10, 6, 0, 4), None: (1, 1, 0, 0)}
        assert funnel["items"][0]["conversion"]["mql_to_sal"] == 13 / 15
        by_tier = await get(feedback.client, "/v1/metrics/funnel/groups", by="account_tier")
        assert [i["group"] for i in by_tier["items"]] == ["strategic", "smb", None]

        bad = await feedback.client.get("/v1/metrics/funnel/groups", params={"by": "region"}, headers=ADMIN)
        assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")

        async with feedback.runtime.engine.begin() as conn:
            before = await store.projection_snapshot(conn)
        async with feedback.runtime.engine.begin() as conn:
            await rebuild(settings, conn)
        async with feedback.runtime.engine.begin() as conn:
            after = await store.projection_snapshot(conn)
        assert after == before
        columns = [c.name for c in store.handoff_facts.columns]
        tier, match = columns.index("account_tier"), columns.index("account_matched")
        assert sorted({(row[tier], row[match]) for row in after["handoff_facts"]}, key=str) == sorted(
            {("strategic", True), ("smb", True), (None, False), (None, None)}, key=str
        )
