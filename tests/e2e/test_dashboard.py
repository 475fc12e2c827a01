"""The ops dashboard in a real browser, against the real feedback service and its data.

The feedback service runs as its own process (`leadflow serve feedback`) on the
test's broker and database; handoffs and decisions go in as lifecycle events,
as the handoff service would publish them. The assertions are on what a person
sees on the page, and the test leaves a screenshot in test-artifacts/ (and refreshes
docs/dashboard.png when LEADFLOW_UPDATE_DOCS_SCREENSHOT is set).
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Locator, Page, Response, expect

from shared.envelope import Envelope, utcnow
from shared.events import (
    LEAD_LIFECYCLE,
    EventData,
    HandoffCreated,
    LeadRejected,
    SalAccepted,
    ScoreContribution,
    SlaBreached,
    envelope_for,
)
from shared.settings import Settings
from tests.conftest import ROOT
from tests.e2e.browser import chromium
from tests.support import ADMIN, eventually, loopback_client, producer, service_ready, start_service

WEBINAR_RULE = "engagement.webinar_attended"


@dataclass(frozen=True)
class Lead:
    """One handed-off lead and what sales did with it: accepted, rejected (`reason`) or nothing yet."""

    source: str
    team: str
    owner: str
    mql_at: datetime
    decided_at: datetime | None
    reason: str | None = None
    in_time: bool = True

    @classmethod
    def decided(
        cls, source: str, decided_at: datetime, reason: str | None = None, in_time: bool = True
    ) -> Lead:
        """Handed over 3 hours before the decision; webinar leads go to EMEA, the others to AMER."""
        team, owner = ("emea", "rep-ana") if source == "webinar" else ("amer", f"rep-{source[:3]}")
        return cls(source, team, owner, decided_at - timedelta(hours=3), decided_at, reason, in_time)


def first_month(now: datetime) -> list[Lead]:
    """25 decisions over the last 19 days, 5 sent back (20%, above the 10% line), most of them lately.

    webinar: 4 of 10 sent back (3 not_ready, 1 not_a_fit); paid_search 1 of 8; organic 0 of 7.
    """
    accepted = [("webinar", 6), ("paid_search", 7), ("organic", 7)]
    pool = [source for source, n in accepted for _ in range(n)]
    pool = pool[0::3] + pool[1::3] + pool[2::3]  # mix the sources over time
    rejected = [
        ("webinar", "not_ready"),
        ("paid_search", "not_ready"),
        ("webinar", "not_a_fit"),
        ("webinar", "not_ready"),
        ("webinar", "not_ready"),
    ]
    order: list[tuple[str, str | None]] = [(s, None) for s in pool[:15]]
    for (source, reason), extra in zip(rejected, pool[15:], strict=True):
        order += [(extra, None), (source, reason)]
    return [
        Lead.decided(source, now - timedelta(hours=18 * (len(order) - i) + 1), reason, in_time=i != 3)
        for i, (source, reason) in enumerate(order)
    ]


def events_of(lead: Lead, now: datetime) -> list[tuple[EventData, datetime]]:
    """What the handoff service publishes for this lead, each with when it happened."""
    handoff_id = f"h-{uuid.uuid4().hex[:12]}"
    channel, campaign = ("events" if lead.source == "webinar" else "digital"), f"{lead.source}-q4"
    rules = [ScoreContribution(rule="fit.title_vp", kind="fit", points=20, detail="VP title")]
    if lead.source == "webinar":
        rules.append(ScoreContribution(rule=WEBINAR_RULE, kind="engagement", points=25, detail="webinar"))
    created = HandoffCreated(
        handoff_id=handoff_id,
        cycle=1,
        owner=lead.owner,
        policy="standard",
        team=lead.team,
        decide_by=lead.mql_at + timedelta(hours=8),
        channel=channel,
        campaign=campaign,
        score=72,
        grade="A",
        source=lead.source,
        mql_at=lead.mql_at,
        explanation=rules,
    )
    if lead.decided_at is None:
        due = now - timedelta(minutes=30)
        breach = SlaBreached(
            handoff_id=handoff_id,
            policy="standard",
            stage="mql",
            owner=lead.owner,
            due_at=due,
            team=lead.team,
        )
        return [(created, lead.mql_at), (breach, due + timedelta(seconds=5))]
    decision = (LeadRejected if lead.reason else SalAccepted)(
        handoff_id=handoff_id,
        cycle=1,
        from_stage="mql",
        to_stage="returned" if lead.reason else "sal",
        actor=lead.owner,
        owner=lead.owner,
        policy="standard",
        in_time=lead.in_time,
        reason=lead.reason,
        channel=channel,
        campaign=campaign,
        team=lead.team,
    )
    return [(created, lead.mql_at), (decision, lead.decided_at)]


async def publish(settings: Settings, leads: list[Lead]) -> None:
    now = utcnow()
    envelopes: list[Envelope] = []
    for lead in leads:
        lead_id = f"lead-{uuid.uuid4().hex[:12]}"
        for data, at in events_of(lead, now):
            envelopes.append(envelope_for(data, source="handoff", lead_id=lead_id, occurred_at=at))
    async with producer(settings) as p:
        for envelope in envelopes:
            key = (envelope.lead_id or "").encode()
            await p.send_and_wait(settings.topic_prefix + LEAD_LIFECYCLE, envelope.to_bytes(), key=key)


def answer_of(response: Response) -> str:
    """A failed answer named by its status and address (the service's log says why)."""
    return f"{response.status} {response.url}"


def cohort_of(at: datetime) -> str:
    year, week, _ = at.isocalendar()
    return f"{year}-W{week:02d}"


@pytest.fixture
async def feedback(settings: Settings, artifacts: Path) -> AsyncIterator[str]:
    """`leadflow serve feedback` on the test's broker and database; yields its URL. Its log is kept
    in the test artifacts, so a failed answer can be read there."""
    log = (artifacts / "dashboard-feedback.log").open("wb")
    process, url = start_service("feedback", settings, log=log)
    try:
        await eventually(lambda: service_ready(url), timeout=90)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


async def api(url: str, path: str) -> dict[str, Any]:
    async with loopback_client(base_url=url, headers=ADMIN, timeout=10) as client:
        response = await client.get(path)
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer


async def when_feedback_has(url: str, decisions: int, open_alerts: int) -> None:
    async def probe() -> bool:
        rate = await api(url, "/v1/metrics/return-rate?window=30d")
        alerts = await api(url, "/v1/alerts?status=open")
        return rate["denominator"] == decisions and len(alerts["items"]) == open_alerts

    await eventually(probe, timeout=60)


def row(page: Page, testid: str, text: str) -> Locator:
    return page.get_by_test_id(testid).filter(has_text=text)


def mqls_of(page: Page, cohort: str) -> Locator:
    return page.locator(f'[data-testid="funnel-row"][data-cohort="{cohort}"]').get_by_test_id("funnel-mql")


async def test_dashboard_shows_the_return_rate_and_updates_itself(
    settings: Settings, feedback: str, artifacts: Path
) -> None:
    now = utcnow()
    month = first_month(now)
    stuck = Lead("organic", "emea", "rep-dee", now - timedelta(hours=3), None)  # undecided, SLA breached
    await publish(settings, [*month, stuck])
    await when_feedback_has(feedback, decisions=25, open_alerts=2)  # the return rate, the breach
    expect.set_options(timeout=20_000)

    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: message.type == "error" and errors.append(message.text))
        page.on("response", lambda answer: answer.status >= 500 and errors.append(answer_of(answer)))
        await page.goto(f"{feedback}/?refresh=1#key={settings.admin_key}")
        await sees_the_first_month(page, [*month, stuck])
        assert "key=" not in page.url, "the key must leave the address bar"
        await page.screenshot(path=artifacts / "dashboard.png", full_page=True)
        if os.environ.get("LEADFLOW_UPDATE_DOCS_SCREENSHOT"):  # the README's picture, refreshed on request
            shutil.copyfile(artifacts / "dashboard.png", ROOT / "docs" / "dashboard.png")

        # 25 more accepted leads: the page follows by itself, down to the line and the alert gone.
        updated_before = await page.get_by_test_id("updated").inner_text()
        await page.evaluate("window.notReloaded = true")
        more = [Lead.decided("organic", now - timedelta(hours=1)) for _ in range(25)]
        this_week = cohort_of(more[0].mql_at)
        mqls_before = sum(1 for lead in [*month, stuck] if cohort_of(lead.mql_at) == this_week)
        await publish(settings, more)
        await expect(page.get_by_test_id("decisions")).to_have_text("50 decisions")
        await expect(page.get_by_test_id("rate")).to_have_text("10.0%")
        await expect(page.get_by_test_id("status")).to_have_text("✓ OK")
        await expect(page.get_by_test_id("alert-list")).to_have_text("No open alerts")
        await expect(page.get_by_test_id("breach-row")).to_have_count(1)
        await expect(mqls_of(page, this_week).locator("b")).to_have_text(str(mqls_before + 25))
        assert await page.get_by_test_id("updated").inner_text() != updated_before
        assert await page.evaluate("window.notReloaded") is True
        await page.screenshot(path=artifacts / "dashboard-after-refresh.png", full_page=True)
        assert errors == [], errors


async def sees_the_first_month(page: Page, leads: list[Lead]) -> None:
    # The headline: 5 of 25 sent back, against the 10% line, and the trend up to it.
    await expect(page.get_by_test_id("rate")).to_have_text("20.0%")
    await expect(page.get_by_test_id("status")).to_have_text("▲ Above threshold")
    await expect(page.get_by_test_id("decisions")).to_have_text("25 decisions")
    await expect(page.get_by_test_id("threshold")).to_have_text("10%")
    await expect(page.get_by_test_id("interval")).to_have_text("8.9% – 39.1%")
    trend = page.get_by_test_id("trend-chart")
    await expect(trend.get_by_role("img")).to_have_attribute("aria-label", re.compile(r"latest 20\.0%"))
    await expect(trend.get_by_text("10% threshold")).to_be_visible()

    # By group: each source with its rate; those above the line say so in words.
    await expect(page.get_by_test_id("group-row")).to_have_count(3)
    await expect(row(page, "group-row", "webinar")).to_contain_text("40.0%")
    await expect(row(page, "group-row", "webinar")).to_contain_text("▲ above")
    await expect(row(page, "group-row", "paid_search")).to_contain_text("12.5%")
    await expect(row(page, "group-row", "organic")).to_contain_text("0.0%")
    await expect(row(page, "group-row", "organic")).not_to_contain_text("above")
    await page.get_by_label("Group by").select_option("team")
    await expect(row(page, "group-row", "emea")).to_contain_text("40.0%")
    await expect(row(page, "group-row", "amer")).to_contain_text("6.7%")
    await page.get_by_label("Group by").select_option("source")
    await expect(row(page, "group-row", "webinar")).to_be_visible()

    # Why they come back, the funnel, the rule behind the returns, what is open.
    await expect(row(page, "reason-row", "not_ready")).to_contain_text("80% · 4")
    await expect(row(page, "reason-row", "not_a_fit")).to_contain_text("20% · 1")
    for cohort in {cohort_of(lead.mql_at) for lead in leads}:
        mqls = sum(1 for lead in leads if cohort_of(lead.mql_at) == cohort)
        await expect(mqls_of(page, cohort).locator("b")).to_have_text(str(mqls))
    # None of these leads had an account: the split by account puts every one under unmatched.
    by_account = page.locator('[data-testid="account-funnel-row"][data-cohort="unmatched"]')
    await expect(by_account.get_by_test_id("funnel-mql").locator("b")).to_have_text(str(len(leads)))
    await page.get_by_label("Group by").select_option("account_matched")
    await expect(row(page, "group-row", "unmatched")).to_contain_text("20.0%")
    await page.get_by_label("Group by").select_option("source")
    await expect(row(page, "group-row", "webinar")).to_be_visible()
    await expect(row(page, "rule-row", WEBINAR_RULE)).to_contain_text("6.0×")
    await expect(page.get_by_test_id("alert")).to_have_count(1)
    await expect(page.get_by_test_id("alert")).to_contain_text("Overall return rate")
    await expect(page.get_by_test_id("alert").get_by_test_id("severity")).to_have_text("◐ watch")
    await expect(page.get_by_test_id("breach-row")).to_have_count(1)
    await expect(page.get_by_test_id("breach-row")).to_contain_text("rep-dee")
    await expect(page.get_by_test_id("breach-row")).to_contain_text("emea")
    await expect(row(page, "team-row", "emea")).to_contain_text("1 breach · 1 open")


async def test_dashboard_asks_for_a_key_and_serves_only_its_own_files(feedback: str) -> None:
    async with loopback_client(base_url=feedback, timeout=10) as client:
        page_response = await client.get("/")
        script = await client.get("/dashboard/dashboard.js")
        style = await client.get("/dashboard/dashboard.css")
        outside = [await client.get(p) for p in ("/dashboard/..%2Fdashboard.py", "/dashboard/index.html")]
    assert page_response.status_code == 200
    assert page_response.headers["content-type"].startswith("text/html")
    assert script.headers["content-type"].startswith("text/javascript")
    assert style.headers["content-type"].startswith("text/css")
    assert "max-age=" in script.headers["cache-control"]
    assert [r.status_code for r in outside] == [404, 404]

    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(feedback)
        await expect(page.get_by_test_id("key-form")).to_be_visible()
        await page.get_by_label("API key").fill("not-a-key")
        await page.get_by_role("button", name="Show the dashboard").click()
        await expect(page.get_by_test_id("key-message")).to_have_text(
            "That API key was not accepted. Enter a valid key."
        )
        await expect(page.locator("#board")).to_be_hidden()
