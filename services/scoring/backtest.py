"""Backtests: what a candidate scoring model would have done with the stored history.

Pure: the caller streams the histories in (`BacktestTally.add`, one lead at a time, so memory
stays flat however long the history) and prints the report. Each lead is replayed under
both models (see services.scoring.incremental_scorer); a lead "qualifies" under a model if its score
meets the MQL rule at some instant of the window. Returns and cool-offs are not simulated:
each lead counts once, as an MQL or not.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from services.scoring.accounts.account_backtest import AccountBook, AccountFigures
from services.scoring.domain import LeadEvent
from services.scoring.incremental_scorer import EVENT_ORDER, TimelineScorer
from services.scoring.model import GRADES, ScoringModel
from shared.rates import RateFigure, rate_figure

__all__ = ["BacktestReport", "BacktestTally", "LeadHistory", "render_report", "run_backtest"]

Outcome = Literal["accepted", "sent_back"]


@dataclass(frozen=True)
class LeadHistory:
    lead_id: str
    email: str | None
    traits: Mapping[str, Any]
    events: Sequence[LeadEvent]
    # From handoff decisions on lead.lifecycle: sent_back if ever rejected or returned,
    # accepted if accepted and never sent back, None if sales never decided.
    outcome: Outcome | None


@dataclass(frozen=True)
class BacktestReport:
    current_version: str
    candidate_version: str
    since: datetime
    leads: int  # leads with at least one event since `since`
    events: int  # events replayed
    mqls_current: int  # leads that qualify under the current model
    mqls_candidate: int
    newly_qualifying: int  # qualify under the candidate only
    no_longer_qualifying: int  # qualify under the current model only
    grade_mix_current: dict[str, int]  # grade -> leads, A..D
    grade_mix_candidate: dict[str, int]
    # Sent back / decided, among the leads each subset holds.
    return_rate_both: RateFigure
    return_rate_candidate_only: RateFigure
    return_rate_current_only: RateFigure
    elapsed_s: float = 0.0  # filled in by the caller, who times the whole run
    accounts: AccountFigures | None = None  # when either model has an `account` section


Subset = Literal["both", "candidate_only", "current_only"]


def run_backtest(
    current: ScoringModel,
    candidate: ScoringModel,
    leads: Iterable[LeadHistory],
    *,
    since: datetime,
    accounts: AccountBook | None = None,
) -> BacktestReport:
    """Replay each lead's events since `since` under both models and compare. Emits nothing.

    `leads` is consumed once, one lead at a time; only counters are kept.
    """
    tally = BacktestTally(current, candidate, since=since, accounts=accounts)
    for lead in leads:
        tally.add(lead)
    return tally.report()


class BacktestTally:
    """A backtest fed one lead at a time (as a stream of histories arrives), keeping counters
    only: its memory does not grow with the history."""

    def __init__(
        self,
        current: ScoringModel,
        candidate: ScoringModel,
        *,
        since: datetime,
        accounts: AccountBook | None = None,
    ) -> None:
        self.current, self.candidate, self.since = current, candidate, since
        self.accounts = accounts  # the account roll-up under both models, if any
        self._now, self._new = TimelineScorer(current), TimelineScorer(candidate)
        # Candidates often change only engagement or thresholds: then fit is computed once per lead.
        self._shared = self._now.reads_profiles_like(self._new)
        self._counts: Counter[str] = Counter()
        self._grades: dict[str, Counter[str]] = {"current": Counter(), "candidate": Counter()}
        self._decided: Counter[Subset] = Counter()
        self._sent_back: Counter[Subset] = Counter()

    def add(self, lead: LeadHistory) -> None:
        events = sorted((e for e in lead.events if e.occurred_at >= self.since), key=EVENT_ORDER)
        if not events:
            return
        counts = self._counts
        counts["leads"] += 1
        counts["events"] += len(events)
        if self.accounts is not None:
            self.accounts.add(
                self.current,
                self.candidate,
                lead_id=lead.lead_id,
                email=lead.email,
                traits=lead.traits,
                events=events,
            )
        profile = self._now.profile(email=lead.email, traits=lead.traits)
        now = self._now.qualify(email=lead.email, traits=lead.traits, events=events, profile=profile)
        new = self._new.qualify(
            email=lead.email, traits=lead.traits, events=events, profile=profile if self._shared else None
        )
        self._grades["current"][now.grade] += 1
        self._grades["candidate"][new.grade] += 1
        subset = _subset(now.first_mql_at is not None, new.first_mql_at is not None)
        if subset is None:
            return
        counts[subset] += 1
        if lead.outcome is not None:
            self._decided[subset] += 1
            self._sent_back[subset] += lead.outcome == "sent_back"

    def report(self) -> BacktestReport:
        counts, grades, decided, sent_back = self._counts, self._grades, self._decided, self._sent_back
        return BacktestReport(
            current_version=self.current.version,
            candidate_version=self.candidate.version,
            since=self.since,
            leads=counts["leads"],
            events=counts["events"],
            mqls_current=counts["both"] + counts["current_only"],
            mqls_candidate=counts["both"] + counts["candidate_only"],
            newly_qualifying=counts["candidate_only"],
            no_longer_qualifying=counts["current_only"],
            grade_mix_current={grade: grades["current"][grade] for grade in GRADES},
            grade_mix_candidate={grade: grades["candidate"][grade] for grade in GRADES},
            return_rate_both=rate_figure(sent_back["both"], decided["both"]),
            return_rate_candidate_only=rate_figure(sent_back["candidate_only"], decided["candidate_only"]),
            return_rate_current_only=rate_figure(sent_back["current_only"], decided["current_only"]),
            accounts=self.accounts.figures(self.current, self.candidate)
            if self.accounts is not None
            else None,
        )


def _subset(current: bool, candidate: bool) -> Subset | None:
    if current and candidate:
        return "both"
    if candidate:
        return "candidate_only"
    return "current_only" if current else None


# --- the report -------------------------------------------------------------------------------


def render_report(report: BacktestReport) -> RenderableType:
    """The comparison as a marketing-ops person reads it: figures side by side, then return rates."""
    r = report
    title = Text.assemble(
        ("Backtest: ", "bold"),
        (f"candidate {r.candidate_version}", "bold cyan"),
        " against ",
        (f"current {r.current_version}", "bold"),
        f"\n{r.events:,} events of {r.leads:,} leads since {r.since:%Y-%m-%d %H:%M} UTC",
        f", replayed in {r.elapsed_s:.1f} s" if r.elapsed_s else "",
    )
    parts: list[RenderableType] = [title, _figures(r), _grade_mix(r), _return_rates(r)]
    if r.accounts is not None:
        parts.append(_account_figures(r.accounts))
    return Group(*parts)


def _figures(r: BacktestReport) -> Table:
    table = Table(title="MQLs", title_justify="left")
    table.add_column("")
    table.add_column(f"current\n{r.current_version}", justify="right")
    table.add_column(f"candidate\n{r.candidate_version}", justify="right")
    table.add_column("change", justify="right")
    table.add_row(
        "MQLs", f"{r.mqls_current:,}", f"{r.mqls_candidate:,}", _delta(r.mqls_current, r.mqls_candidate)
    )
    table.add_row("MQL rate", _share(r.mqls_current, r.leads), _share(r.mqls_candidate, r.leads), "")
    table.add_row("newly qualifying", "", f"{r.newly_qualifying:,}", f"{r.newly_qualifying:+,}")
    table.add_row("no longer qualifying", f"{r.no_longer_qualifying:,}", "", f"{-r.no_longer_qualifying:+,}")
    return table


def _account_figures(a: AccountFigures) -> Table:
    table = Table(title=f"MQAs (of {a.accounts:,} accounts with leads replayed)", title_justify="left")
    table.add_column("")
    table.add_column("current", justify="right")
    table.add_column("candidate", justify="right")
    table.add_column("change", justify="right")
    table.add_row(
        "MQAs", f"{a.mqas_current:,}", f"{a.mqas_candidate:,}", _delta(a.mqas_current, a.mqas_candidate)
    )
    table.add_row("accounts newly qualifying", "", f"{a.newly_qualifying:,}", f"{a.newly_qualifying:+,}")
    table.add_row(
        "accounts no longer qualifying", f"{a.no_longer_qualifying:,}", "", f"{-a.no_longer_qualifying:+,}"
    )
    table.caption = (
        "An account qualifies if its members' roll-up at the end of the window meets the MQA rule."
    )
    return table


def _grade_mix(r: BacktestReport) -> Table:
    table = Table(title="Grade mix (every lead replayed)", title_justify="left")
    table.add_column("grade")
    table.add_column("current", justify="right")
    table.add_column("candidate", justify="right")
    table.add_column("change", justify="right")
    for grade in GRADES:
        now, new = r.grade_mix_current.get(grade, 0), r.grade_mix_candidate.get(grade, 0)
        table.add_row(
            grade, f"{now:,} ({_share(now, r.leads)})", f"{new:,} ({_share(new, r.leads)})", _delta(now, new)
        )
    return table


def _return_rates(r: BacktestReport) -> Table:
    table = Table(title="Return rate: sent back / decided by sales", title_justify="left")
    table.add_column("leads qualified by")
    table.add_column("sent back", justify="right")
    table.add_column("decided", justify="right")
    table.add_column("return rate", justify="right")
    table.add_column("95% interval", justify="right")
    rows = (
        ("both models", r.return_rate_both),
        ("the candidate only", r.return_rate_candidate_only),
        ("the current model only", r.return_rate_current_only),
    )
    for label, figure in rows:
        table.add_row(label, f"{figure.numerator:,}", f"{figure.denominator:,}", *_rate(figure))
    table.caption = "Leads sales never decided on are left out; few decisions give wide intervals."
    return table


def _rate(figure: RateFigure) -> tuple[str, str]:
    if figure.rate is None or figure.ci_low is None or figure.ci_high is None:
        return "no decisions", ""
    return f"{figure.rate:.1%}", f"{figure.ci_low:.1%} - {figure.ci_high:.1%}"


def _delta(before: int, after: int) -> str:
    change = after - before
    if before == 0:
        return f"{change:+,}"
    return f"{change:+,} ({change / before:+.0%})"


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "-"
