"""feedback against the real broker and Postgres: return rates by group and reason, the funnel,
rule attribution, group and SLA-breach alerts that survive a restart, and a rebuild from
`lead.lifecycle` that reproduces the facts the consumer built."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta

import pytest

from services.feedback import store
from services.feedback.rebuild import rebuild
from shared.envelope import Envelope, utcnow
from shared.settings import Settings
from tests.integration.test_pipeline_services import publish
from tests.lifecycle import breached, created, moved
from tests.support import ADMIN, eventually, running, tap

CONTENT = {"fit.title": 20.0, "engagement.content_download": 30.0}
REFERRAL = {"fit.title": 20.0, "channel.referral": 25.0}


def first_round() -> list[Envelope]:
    """40 decided handoffs: webinar leads returned 3 in 20 (15%), referral 1 in 20; overall 10%.
    One more handoff (team amer) breaches its review deadline and is still waiting."""
    hour_ago = utcnow() - timedelta(hours=1)
    webinar = [created(n, at=hour_ago, source="webinar", rules=CONTENT) for n in range(20)]
    referral = [created(n, at=hour_ago, source="referral", rules=REFERRAL) for n in range(20, 40)]
    waiting = [
        created(40, at=hour_ago, source=None, team="amer", owner="bo"),
        breached(40, team="amer", owner="bo"),
    ]
    # Acceptances first, so the overall rate never goes above 10% on the way.
    decisions = [moved(n, "lead.sal_accepted") for n in [*range(3, 20), *range(21, 40)]]
    decisions += [moved(n, "lead.rejected", reason="not_ready") for n in range(3)]
    decisions += [moved(20, "lead.rejected", reason="inaccurate_data")]
    later = [moved(4, "lead.sql_qualified"), moved(4, "lead.sqo_created"), moved(5, "lead.sql_qualified")]
    return webinar + referral + waiting + decisions + later


def second_round() -> list[Envelope]:
    """The waiting handoff is accepted; ten more webinar leads are accepted (webinar: 3 in 30)."""
    more = [created(n, source="webinar", rules=CONTENT) for n in range(41, 51)]
    return [moved(40, "lead.sal_accepted", team="amer", owner="bo", in_time=False), *more] + [
        moved(n, "lead.sal_accepted") for n in range(41, 51)
    ]


async def rate_counts_reach(client, numerator: int) -> bool:
    return (await get(client, "/v1/metrics/return-rate"))["numerator"] >= numerator


async def get(client, path: str, **params) -> dict:
    response = await client.get(path, params=params, headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


async def test_groups_reasons_funnel_attribution_and_alerts(settings: Settings) -> None:
    alerts_topic = settings.topic_prefix + "ops.alerts"
    async with running("feedback", settings) as feedback, tap(settings, alerts_topic) as alerts:
        await publish(settings, first_round(), topic="lead.lifecycle")
        raised = await alerts.wait_for("alert.raised", count=2)
        by_key = {e.data["alert_key"]: e.data for e in raised}
        assert set(by_key) == {"return_rate:source:webinar", "sla_breach:h40:mql"}
        webinar = by_key["return_rate:source:webinar"]
        assert (webinar["numerator"], webinar["denominator"], webinar["severity"]) == (3, 20, "watch")
        assert by_key["sla_breach:h40:mql"]["team"] == "amer"
        assert by_key["sla_breach:h40:mql"]["metric"] == "sla_breach"

        overall = await get(feedback.client, "/v1/metrics/return-rate", window="30d")
        assert (overall["numerator"], overall["denominator"], overall["rate"]) == (4, 40, 0.1)
        assert overall["above_threshold"] is False  # at the threshold is not above it
        assert overall["reasons"] == [
            {"reason": "not_ready", "count": 3, "share": 0.75},
            {"reason": "inaccurate_data", "count": 1, "share": 0.25},
        ]

        sources = await get(feedback.client, "/v1/metrics/return-rate/groups", by="source")
        assert [(i["group"], i["numerator"], i["denominator"], i["alert"]) for i in sources["items"]] == [
            ("webinar", 3, 20, "watch"),
            ("referral", 1, 20, None),
        ]
        assert sources["items"][0]["reasons"] == [{"reason": "not_ready", "count": 3, "share": 1.0}]
        assert 0.05 < sources["items"][0]["ci_low"] < 0.06
        bands = await get(feedback.client, "/v1/metrics/return-rate/groups", by="score_band")
        assert [(i["group"], i["denominator"]) for i in bands["items"]] == [("60-79", 40)]

        attribution = await get(feedback.client, "/v1/metrics/rule-attribution", window="30d")
        rules = {i["rule"]: i for i in attribution["items"]}
        content = rules["engagement.content_download"]
        assert (content["with"]["numerator"], content["with"]["denominator"]) == (3, 20)
        assert (content["without"]["numerator"], content["without"]["denominator"]) == (1, 20)
        assert content["ratio"] == pytest.approx(3.0)  # content downloads come back 3x as often
        not_ready = next(r for r in content["reasons"] if r["reason"] == "not_ready")
        assert (not_ready["with_rate"], not_ready["without_rate"], not_ready["ratio"]) == (0.15, 0.0, None)
        assert rules["fit.title"]["without"]["denominator"] == 0  # every lead had it: no comparison
        assert attribution["items"][0]["rule"] == "engagement.content_download"

        funnel = await get(feedback.client, "/v1/metrics/funnel", cohort="week", cohorts=2)
        totals = {k: sum(c[k] for c in funnel["items"]) for k in ("mql", "sal", "sql", "sqo", "returned")}
        assert totals == {"mql": 41, "sal": 36, "sql": 2, "sqo": 1, "returned": 4}
        assert funnel["breaches_by_team"] == [{"team": "amer", "breaches": 1, "open": 1}]
        open_alerts = (await get(feedback.client, "/v1/alerts", status="open"))["items"]
        assert {a["alert_key"] for a in open_alerts} == set(by_key)

        async def exposed() -> str | None:  # what Prometheus scrapes, once the alert timer has run
            text = (await feedback.client.get("/metrics", headers=ADMIN)).text
            return text if 'leadflow_alerts_open{metric="sla_breach"} 1.0' in text else None

        scraped = await eventually(exposed, timeout=10)
        assert 'leadflow_return_rate{group="overall"} 0.1' in scraped
        assert 'leadflow_return_rate{group="source:webinar"} 0.15' in scraped
        assert 'leadflow_return_rate_decisions{group="overall"} 40.0' in scraped

        await publish(settings, second_round(), topic="lead.lifecycle")
        resolved = await alerts.wait_for("alert.resolved", count=2)
        assert {e.data["alert_key"] for e in resolved} == set(by_key)
        webinar_now = next(e.data for e in resolved if e.data["group"] == "source:webinar")
        assert (webinar_now["numerator"], webinar_now["denominator"]) == (3, 30)

        funnel = await get(feedback.client, "/v1/metrics/funnel", cohort="month", cohorts=2)
        assert sum(c["sla"]["decided"] for c in funnel["items"]) == 51
        assert sum(c["sla"]["in_time"] for c in funnel["items"]) == 50  # h40 was decided late
        assert funnel["breaches_by_team"] == [{"team": "amer", "breaches": 1, "open": 0}]
        series = await get(
            feedback.client, "/v1/metrics/return-rate/series", window="30d", step="1d", points=3
        )
        assert [(p["numerator"], p["denominator"]) for p in series["items"]][-1] == (4, 51)
        assert series["items"][0]["at"] < series["items"][-1]["at"]

        for path, params, field in [
            ("/v1/metrics/return-rate/groups", {"by": "region"}, "by"),
            ("/v1/metrics/return-rate/series", {"step": "often"}, "step"),
            ("/v1/metrics/funnel", {"cohort": "year"}, "cohort"),
        ]:
            bad = await feedback.client.get(path, params=params, headers=ADMIN)
            assert bad.status_code == 422, (path, bad.text)
            assert bad.headers["content-type"].startswith("application/problem+json")
            assert field in bad.text
        assert (await feedback.client.get("/v1/metrics/funnel")).status_code == 401

    # A restart re-reads nothing it already handled and re-fires nothing: the alert state is in Postgres.
    async with running("feedback", settings) as feedback, tap(settings, alerts_topic) as alerts:
        await asyncio.sleep(2.5)  # the alert timer runs every second in tests
        assert len(alerts.envelopes("alert.raised")) == 2
        assert len(alerts.envelopes("alert.resolved")) == 2
        listed = (await get(feedback.client, "/v1/alerts"))["items"]
        assert sorted((a["alert_key"], a["status"]) for a in listed) == [
            ("return_rate:source:webinar", "resolved"),
            ("sla_breach:h40:mql", "resolved"),
        ]

        # Rebuilding from the topic reproduces exactly the facts the consumer built.
        async with feedback.runtime.engine.begin() as conn:
            before = await store.projection_snapshot(conn)
        async with feedback.runtime.engine.begin() as conn:
            summary = await rebuild(settings, conn)
        async with feedback.runtime.engine.begin() as conn:
            after = await store.projection_snapshot(conn)
        assert summary.handoffs == 51 and summary.duplicates == 0
        assert after == before
        assert len(after["fact_rules"]) == 51 * 2

    # The operator's command does the same.
    environment = {
        **os.environ,
        "LEADFLOW_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "LEADFLOW_KAFKA_IDEMPOTENT_PRODUCER": str(settings.kafka_idempotent_producer).lower(),
        "LEADFLOW_DATABASE_URL": settings.database_url,
        "LEADFLOW_TOPIC_PREFIX": settings.topic_prefix,
    }
    command = [sys.executable, "-m", "leadflow", "feedback", "rebuild"]
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "rebuilt 51 handoffs from" in done.stdout


async def test_a_watch_alert_is_confirmed_once_the_interval_clears_the_threshold(settings: Settings) -> None:
    alerts_topic = settings.topic_prefix + "ops.alerts"
    async with running("feedback", settings) as feedback, tap(settings, alerts_topic) as alerts:
        start = [created(n) for n in range(40)]
        first = [moved(n, "lead.sal_accepted") for n in range(3, 20)] + [
            moved(n, "lead.rejected") for n in range(3)
        ]
        await publish(settings, start + first, topic="lead.lifecycle")
        [watch] = await alerts.wait_for("alert.raised")
        assert (watch.data["severity"], watch.data["numerator"]) == ("watch", 3)

        # One rejection at a time, each counted before the next, so the alert is judged at every
        # count (a broker may deliver a burst in one batch or in several).
        for n in range(20, 30):
            await publish(settings, [moved(n, "lead.rejected")], topic="lead.lifecycle")
            await eventually(lambda n=n: rate_counts_reach(feedback.client, n - 16))
        raised = await alerts.wait_for("alert.raised", count=2)
        confirmed = raised[1].data
        # 5 of 22 is the first count whose Wilson lower bound (0.1012) clears 10%.
        assert (confirmed["severity"], confirmed["numerator"], confirmed["denominator"]) == (
            "confirmed",
            5,
            22,
        )
        assert confirmed["ci_low"] > 0.10

        [listed] = (await get(feedback.client, "/v1/alerts", status="open"))["items"]
        assert (listed["alert_key"], listed["severity"]) == ("return_rate:overall", "confirmed")
        await asyncio.sleep(2.0)  # the timer re-evaluates meanwhile: confirmed stays, nothing repeats
        assert len(alerts.envelopes("alert.raised")) == 2
        assert alerts.envelopes("alert.resolved") == []
