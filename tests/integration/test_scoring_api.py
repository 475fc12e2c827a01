"""scoring's read API and rescoring, against the real broker and Postgres."""

from __future__ import annotations

from pathlib import Path

from leadflow.admin.rescore import rescore
from services.scoring.config_files import load_model, parse_model
from shared.settings import Settings
from tests.integration.test_pipeline_services import intake_envelopes, publish
from tests.support import ADMIN, eventually, good_fit_journey, running, tap, unique_email


def page_views(email: str, n: int) -> list[dict]:
    journey = good_fit_journey(email)
    return [journey[0]] * 0 + [
        {
            **journey[0],
            "event_id": f"{journey[0]['event_id']}-{i}",
            "properties": {"url": f"https://x.example/{i}"},
        }
        for i in range(n)
    ]


async def test_leads_filter_by_stage_score_and_grade_with_cursor_pages(settings: Settings) -> None:
    buyers = [unique_email(f"buyer{i}") for i in range(3)]
    browsers = [unique_email(f"browser{i}") for i in range(4)]
    async with running("scoring", settings) as scoring:
        events = [e for b in buyers for e in good_fit_journey(b)] + [
            e for b in browsers for e in page_views(b, 2)
        ]
        await publish(settings, intake_envelopes(events))

        async def all_scored() -> list | None:
            items = (await scoring.client.get("/v1/leads?limit=500", headers=ADMIN)).json()["items"]
            return items if len(items) == 7 else None

        everyone = await eventually(all_scored)
        assert [i["score"] for i in everyone] == sorted((i["score"] for i in everyone), reverse=True)
        mqls = (await scoring.client.get("/v1/leads", params={"stage": "mql"}, headers=ADMIN)).json()["items"]
        assert sorted(i["email"] for i in mqls) == sorted(buyers)
        high = await scoring.client.get(
            "/v1/leads", params={"min_score": mqls[-1]["score"], "grade": ["A", "B"]}, headers=ADMIN
        )
        assert {i["email"] for i in high.json()["items"]} >= set(buyers)

        seen, cursor = [], None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await scoring.client.get("/v1/leads", params=params, headers=ADMIN)).json()
            seen += [i["lead_id"] for i in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == [i["lead_id"] for i in everyone]
        bad = await scoring.client.get("/v1/leads", params={"cursor": "nonsense"}, headers=ADMIN)
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "cursor"


async def test_timeline_shows_events_and_score_changes_and_the_active_model(settings: Settings) -> None:
    email = unique_email()
    async with running("scoring", settings) as scoring:
        await publish(settings, intake_envelopes(good_fit_journey(email)[:1]))
        await publish(settings, intake_envelopes(good_fit_journey(email)[1:]))
        lead = await eventually(lambda: _lead(scoring.client, email, stage="mql"))
        timeline = (await scoring.client.get(f"/v1/leads/{lead['lead_id']}/timeline", headers=ADMIN)).json()
        assert [e["event_type"] for e in timeline if e["kind"] == "event"] == [
            "page_view",
            "page_view",
            "content_download",
            "demo_request",
        ]
        changes = [e for e in timeline if e["kind"] == "score"]
        assert changes[-1]["stage"] == "mql" and changes[-1]["cause"] == "event"
        assert all(c["model_version"] == lead["model_version"] for c in changes)
        active = (await scoring.client.get("/v1/models/active", headers=ADMIN)).json()
        assert active["version"] == lead["model_version"]
        assert active["model"]["mql"]["min_score"] > 0


async def _lead(client, email: str, stage: str) -> dict | None:
    items = (await client.get("/v1/leads", params={"email": email}, headers=ADMIN)).json()["items"]
    return items[0] if items and items[0]["stage"] == stage else None


async def test_rescore_under_a_lower_threshold_makes_new_mqls_and_announces_only_them(
    settings: Settings, tmp_path: Path
) -> None:
    browser = unique_email("browser")
    buyer = unique_email("buyer")
    async with (
        running("scoring", settings) as scoring,
        tap(settings, settings.topic_prefix + "lead.lifecycle") as lc,
    ):
        await publish(settings, intake_envelopes(page_views(browser, 3) + good_fit_journey(buyer)))
        await eventually(lambda: _lead(scoring.client, buyer, stage="mql"))
        before = await eventually(lambda: _lead(scoring.client, browser, stage="nurture"))
        await lc.wait_for("lead.mql_reached")
        published_before = len(lc.envelopes())

        text = Path("config/scoring-model.yaml").read_text()
        lenient = parse_model(
            text.replace("min_score: 50", "min_score: 1").replace(
                f'version: "{load_model("config/scoring-model.yaml").version}"', 'version: "lenient-1"'
            )
        )
        assert lenient.mql.min_score == 1
        summary = await rescore(settings, lenient)
        assert summary.became_mql >= 1 and summary.leads == 2

        [new_mql] = await lc.wait_for("lead.mql_reached", lambda e: e.lead_id == before["lead_id"])
        assert new_mql.data["model_version"] == "lenient-1"
        after = await _lead(scoring.client, browser, stage="mql")
        assert after is not None and after["model_version"] == "lenient-1"
        # Only the lead whose MQL status changed is announced (lead.scored + lead.mql_reached).
        new = lc.envelopes()[published_before:]
        assert {e.lead_id for e in new} == {before["lead_id"]}
        again = await rescore(settings, lenient)
        assert again.became_mql == 0 and again.changed == 0
