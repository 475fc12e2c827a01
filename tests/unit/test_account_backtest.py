"""Backtests report accounts too: MQAs under each model, accounts newly and no longer qualifying."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from rich.console import Console

from services.scoring.accounts.account_backtest import AccountBook
from services.scoring.accounts.account_score import Firmographics
from services.scoring.backtest import LeadHistory, render_report, run_backtest
from services.scoring.config_files import load_model
from services.scoring.domain import LeadEvent
from tests.unit.test_backtest import NOW, SINCE

CURRENT = load_model(Path(__file__).resolve().parents[2] / "config" / "scoring-model.yaml")
assert CURRENT.account is not None
# The candidate asks for four engaged people instead of three.
STRICTER = CURRENT.model_copy(
    update={
        "version": "stricter-mqa",
        "account": CURRENT.account.model_copy(
            update={"mqa": CURRENT.account.mqa.model_copy(update={"min_engaged_people": 4})}
        ),
    }
)
STRATEGIC = Firmographics("strategic", "Software", 800, "US")


def demo(lead_id: str, days_ago: float = 2) -> LeadHistory:
    events = [LeadEvent("demo_request", NOW - timedelta(days=days_ago), {"form_id": "demo"})]
    return LeadHistory(lead_id, f"{lead_id}@acme.com", {"title": "Analyst"}, events, None)


def book() -> AccountBook:
    members = {f"a{i}": "three-people" for i in range(3)} | {f"b{i}": "four-people" for i in range(4)}
    firms = {"three-people": STRATEGIC, "four-people": STRATEGIC, "nobody": STRATEGIC}
    return AccountBook({**members, "lonely": "one-person"}, {**firms, "one-person": STRATEGIC})


def leads() -> list[LeadHistory]:
    return [demo(f"a{i}") for i in range(3)] + [demo(f"b{i}") for i in range(4)] + [demo("lonely"), demo("x")]


def test_a_candidate_asking_for_a_bigger_buying_group_no_longer_qualifies_a_smaller_account() -> None:
    report = run_backtest(CURRENT, STRICTER, leads(), since=SINCE, accounts=book())
    assert report.accounts is not None
    figures = report.accounts
    assert (figures.accounts, figures.mqas_current, figures.mqas_candidate) == (3, 2, 1)
    assert (figures.newly_qualifying, figures.no_longer_qualifying) == (0, 1)
    reverse = run_backtest(STRICTER, CURRENT, leads(), since=SINCE, accounts=book())
    assert reverse.accounts is not None and reverse.accounts.newly_qualifying == 1


def test_the_report_shows_the_account_figures() -> None:
    report = run_backtest(CURRENT, STRICTER, leads(), since=SINCE, accounts=book())
    console = Console(width=120, record=True)
    console.print(render_report(report))
    text = console.export_text()
    assert "MQAs (of 3 accounts with leads replayed)" in text
    assert "accounts no longer qualifying" in text


def test_without_account_sections_there_are_no_account_figures() -> None:
    plain = CURRENT.model_copy(update={"account": None})
    assert run_backtest(plain, plain, leads(), since=SINCE, accounts=book()).accounts is None
