"""Backtests: a candidate model replayed against the current one over a hand-made history."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
from rich.console import Console

from services.scoring.backtest import BacktestReport, LeadHistory, render_report, run_backtest
from services.scoring.config_files import parse_model
from services.scoring.domain import LeadEvent, ScoringModel

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SINCE = NOW - timedelta(days=90)

CURRENT = parse_model(
    """\
version: current
grades: {A: 60, B: 40, C: 20}
fit:
  - {id: title.vp, title: '\\bvp\\b', points: 25}
  - {id: country.core, country: [US], points: 20}
engagement:
  - {id: demo, event: demo_request, points: 30}
  - {id: pricing, event: page_view, where: {url: {contains: /pricing}}, points: 5}
  - {id: page_view, event: page_view, points: 1, cap: 5}
undesirables:
  - {id: unsubscribed, event: unsubscribe, disqualify: true}
mql: {min_score: 30, min_grade: C}
"""
)
LOWER = CURRENT.model_copy(
    update={"version": "lower", "mql": CURRENT.mql.model_copy(update={"min_score": 10})}
)

VP_US = {"title": "VP Marketing", "country": "US"}  # 45 fit points: grade B
Outcome = Literal["accepted", "sent_back"] | None


def lead(
    lead_id: str, traits: dict[str, Any], *events: tuple[str, float], outcome: Outcome = None
) -> LeadHistory:
    """A lead whose events are (type, days ago); page views are of the pricing page."""
    history = [
        LeadEvent(kind, NOW - timedelta(days=days_ago), {"url": "/pricing"} if kind == "page_view" else {})
        for kind, days_ago in events
    ]
    return LeadHistory(lead_id, f"{lead_id}@acme.com", traits, history, outcome)


def history() -> Iterator[LeadHistory]:
    """A generator, as the store streams it: run_backtest must go through it once."""
    yield lead("demo-sent-back", VP_US, ("demo_request", 3), outcome="sent_back")
    yield lead("demo-accepted", VP_US, ("page_view", 4), ("demo_request", 3), outcome="accepted")
    yield lead("demo-undecided", VP_US, ("demo_request", 1))
    yield lead("pricing-sent-back", VP_US, ("page_view", 5), ("page_view", 2), outcome="sent_back")
    yield lead("pricing-undecided", VP_US, ("page_view", 5), ("page_view", 2))
    # The demo request is older than the window: only the pricing views are replayed.
    yield lead(
        "old-demo", VP_US, ("demo_request", 120), ("page_view", 9), ("page_view", 8), outcome="accepted"
    )
    yield lead("grade-d", {}, ("demo_request", 1), outcome="accepted")  # never qualifies
    yield lead("unsubscribed", VP_US, ("unsubscribe", 10), ("demo_request", 2), outcome="sent_back")
    yield lead("long-gone", VP_US, ("demo_request", 200), outcome="sent_back")  # nothing in the window


def backtest(current: ScoringModel, candidate: ScoringModel) -> BacktestReport:
    return run_backtest(current, candidate, history(), since=SINCE)


def test_backtest_counts_leads_and_events_in_the_window_only():
    report = backtest(CURRENT, LOWER)
    assert (report.leads, report.events) == (8, 13)
    assert (report.current_version, report.candidate_version, report.since) == ("current", "lower", SINCE)
    assert report.elapsed_s == 0.0


def test_a_candidate_with_a_lower_threshold_qualifies_more_leads():
    report = backtest(CURRENT, LOWER)
    assert (report.mqls_current, report.mqls_candidate) == (3, 6)
    assert (report.newly_qualifying, report.no_longer_qualifying) == (3, 0)


def test_return_rates_are_computed_on_the_right_subsets():
    report = backtest(CURRENT, LOWER)
    both, new_only = report.return_rate_both, report.return_rate_candidate_only
    # Both: the three demo requests, two decided, one sent back.
    assert (both.numerator, both.denominator, both.rate) == (1, 2, 0.5)
    # Candidate only: the pricing browsers and the old demo request, two decided, one sent back.
    assert (new_only.numerator, new_only.denominator, new_only.rate) == (1, 2, 0.5)
    assert new_only.ci_low is not None and new_only.ci_low < 0.5 < (new_only.ci_high or 0)
    current_only = report.return_rate_current_only
    assert (current_only.denominator, current_only.rate, current_only.ci_low) == (0, None, None)


def test_a_stricter_candidate_no_longer_qualifies_some_leads():
    report = backtest(LOWER, CURRENT)
    assert (report.mqls_current, report.mqls_candidate) == (6, 3)
    assert (report.newly_qualifying, report.no_longer_qualifying) == (0, 3)
    figure = report.return_rate_current_only
    assert (figure.numerator, figure.denominator) == (1, 2)


def test_grade_mix_counts_every_replayed_lead_under_each_model():
    generous = CURRENT.model_copy(
        update={"version": "generous", "grades": CURRENT.grades.model_copy(update={"A": 45})}
    )
    report = backtest(CURRENT, generous)
    assert report.grade_mix_current == {"A": 0, "B": 7, "C": 0, "D": 1}
    assert report.grade_mix_candidate == {"A": 7, "B": 0, "C": 0, "D": 1}
    assert list(report.grade_mix_current) == ["A", "B", "C", "D"]
    # The same engagement and threshold: the same leads qualify.
    assert (report.mqls_current, report.mqls_candidate, report.newly_qualifying) == (3, 3, 0)


def test_backtest_of_no_history_is_all_zeros():
    report = run_backtest(CURRENT, LOWER, [], since=SINCE)
    assert (report.leads, report.events, report.mqls_current, report.mqls_candidate) == (0, 0, 0, 0)
    assert report.grade_mix_candidate == {"A": 0, "B": 0, "C": 0, "D": 0}


@pytest.fixture
def rendered() -> str:
    console = Console(record=True, width=120)
    console.print(render_report(backtest(CURRENT, LOWER)))
    return console.export_text()


def cells(rendered: str, label: str) -> list[str]:
    """The cells of the table row that starts with `label`."""
    row = next(line for line in rendered.splitlines() if line.startswith(f"│ {label} "))
    return [cell.strip() for cell in row.split("│")[1:-1]]


def test_report_shows_both_models_side_by_side_with_the_change(rendered: str):
    assert "candidate lower against current current" in rendered
    assert "13 events of 8 leads since 2026-08-22 12:00 UTC" in rendered
    assert cells(rendered, "MQLs") == ["MQLs", "3", "6", "+3 (+100%)"]
    assert cells(rendered, "newly qualifying") == ["newly qualifying", "", "3", "+3"]
    assert cells(rendered, "no longer qualifying") == ["no longer qualifying", "0", "", "+0"]


def test_report_shows_the_grade_mix_and_the_three_return_rates(rendered: str):
    assert "Grade mix" in rendered
    assert cells(rendered, "B") == ["B", "7 (87.5%)", "7 (87.5%)", "+0 (+0%)"]
    rates = {
        label: line
        for line in rendered.splitlines()
        for label in ("both models", "the candidate only", "the current model only")
        if label in line
    }
    assert "50.0%" in rates["both models"] and "9.5% - 90.5%" in rates["both models"]
    assert "50.0%" in rates["the candidate only"]
    assert "no decisions" in rates["the current model only"]
