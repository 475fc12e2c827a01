"""The bench's tables: each figure beside its ceiling from the same run, in markdown."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bench.backlog import Drain
from bench.backtest import BACKTEST_EVENTS, BacktestMemory, BacktestTiming
from bench.end_to_end import LATENCY_RATE
from bench.feedback import API_REQUESTS, HANDOFFS, FeedbackTiming
from bench.handoff import HANDOFF_RATE, HANDOFF_REQUESTS, HandoffPhase
from bench.intake import Served
from bench.quantiles import percentile
from bench.scoring_history import HISTORY_LEADS, NEW_EVENTS_PER_LEAD, ROUNDS


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    ceiling_name: str
    ceiling: float

    @property
    def ratio(self) -> float:
        return self.value / self.ceiling if self.ceiling else 0.0


def figures_table(figures: list[Figure]) -> str:
    lines = ["| figure | leadflow | ceiling (same run) | ratio |", "| --- | ---: | --- | ---: |"]
    for f in figures:
        lines.append(
            f"| {f.name} | {f.value:,.0f} {f.unit} | {f.ceiling_name}: {f.ceiling:,.0f}/s | {f.ratio:.2f} |"
        )
    return "\n".join(lines)


def report(
    figures: list[Figure],
    latencies: dict[str, list[float]],
    handoff: dict[str, HandoffPhase],
    feedback: FeedbackTiming,
    backtest: BacktestTiming,
    history: dict[int, Drain],
    memory: BacktestMemory,
    *,
    broker: str,
) -> str:
    lf, raw = latencies["leadflow"], latencies["broker"]
    lines = [
        f"Run on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; broker: {broker}; command: `make bench`.",
        "",
        figures_table(figures),
        "",
        f"| end-to-end latency, intake POST → `lead.mql_reached` ({len(lf)} leads at {LATENCY_RATE:.0f}/s) "
        "| p50 | p99 |",
        "| --- | ---: | ---: |",
        f"| leadflow (intake → Kafka → scoring → outbox → Kafka) | {statistics.median(lf):.1f} ms "
        f"| {percentile(lf, 99):.1f} ms |",
        f"| ceiling: one message through the broker, produce → consume | {statistics.median(raw):.1f} ms "
        f"| {percentile(raw, 99):.1f} ms |",
        "",
        handoff_report(handoff),
        "",
        feedback_report(feedback),
        "",
        "| backtest, current vs candidate model (`leadflow backtest --since 90d`) | seconds |",
        "| --- | ---: |",
        f"| leadflow: {backtest.events:,} events of {backtest.leads:,} leads, two models "
        f"| {backtest.backtest_s:.1f} s |",
        f"| ceiling: streaming the same history out of Postgres | {backtest.read_s:.1f} s |",
        "",
        backtest_memory_report(memory),
        "",
        scoring_history_report(history),
    ]
    return "\n".join(lines)


def figures_report(figures: list[Figure], *, broker: str, command: str) -> str:
    """The run's line and the throughput figures beside their ceilings."""
    return (
        f"Run on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; broker: {broker}; command: `{command}`.\n\n"
        + figures_table(figures)
    )


def served_report(served: dict[str, Served]) -> str:
    """What each server's requests cost it, beside how busy the machine was meanwhile."""
    lines = [
        "| same run, same load | requests/s | server CPU per request | machine busy |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, s in served.items():
        lines.append(f"| {name} | {s.rps:,.0f} | {s.cpu_ms:.3f} ms | {s.machine_busy:.0f}% |")
    return "\n".join(lines)


def scoring_history_report(drains: dict[int, Drain]) -> str:
    """Scoring's rate by prior events per lead, each beside the rate with no history (target 0.8),
    and its CPU per event beside the CPU with none (read as a rate: what a busy machine moves less),
    and Postgres' CPU per event."""
    base = drains.get(0)
    lines = [
        f"| scoring, one process, by prior events per lead ({HISTORY_LEADS} leads, "
        f"{HISTORY_LEADS * NEW_EVENTS_PER_LEAD:,} new events each, median of {ROUNDS} drains) "
        "| events/s | ratio to no history "
        "| CPU per event | ratio (none / this) | Postgres CPU per event |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for prior, d in sorted(drains.items()):
        rate_ratio = d.rate / base.rate if base and base.rate else 0.0
        cpu_ratio = base.cpu_us / d.cpu_us if base and d.cpu_us else 0.0
        lines.append(
            f"| {prior:,} prior events | {d.rate:,.0f} | {rate_ratio:.2f} "
            f"| {d.cpu_us:,.0f} µs | {cpu_ratio:.2f} | {d.db_cpu_us:,.0f} µs |"
        )
    return "\n".join(lines)


def backtest_memory_report(memory: BacktestMemory) -> str:
    return "\n".join(
        [
            f"| `leadflow backtest --since 90d` as its own process, about {BACKTEST_EVENTS:,} events "
            "| peak RSS | seconds |",
            "| --- | ---: | ---: |",
            f"| leadflow (target: under 300 MB) | {memory.peak_rss_mb:,.0f} MB | {memory.seconds:.1f} s |",
        ]
    )


def handoff_report(phases: dict[str, HandoffPhase]) -> str:
    """The handoff latency table, and beside it where the time went in the same run."""
    named = (
        ("queue listing, `GET /v1/handoffs?status=mql&limit=50`", "queue"),
        ("accept, `POST /v1/handoffs/{id}/accept`", "accept"),
        ("ceiling: empty FastAPI endpoint", "empty"),
    )
    lines = [
        f"| handoff API at {HANDOFF_RATE:.0f} requests/s, open loop ({HANDOFF_REQUESTS:,} each) "
        "| p50 | p99 |",
        "| --- | ---: | ---: |",
    ]
    for name, key in named:
        values = phases[key].latencies
        lines.append(f"| {name} | {statistics.median(values):.1f} ms | {percentile(values, 99):.1f} ms |")

    def cells(value: Callable[[HandoffPhase], str]) -> str:
        return " | ".join(value(phases[key]) for _, key in named)

    def server(phase: HandoffPhase) -> str:
        return f"{phase.server_ms[0]:.1f} / {phase.server_ms[1]:.1f}" if phase.server_ms else "–"

    lines += [
        "",
        "| where the time goes (same run) | queue | accept | ceiling |",
        "| --- | ---: | ---: | ---: |",
        "| p50 / p99 in the service, ms (its `leadflow_http_request_seconds`, interpolated in buckets) "
        f"| {cells(server)} |",
        "| CPU of the serving process per request, ms (background loops included) "
        f"| {cells(lambda p: f'{p.cpu_ms:.2f}' if p.cpu_ms is not None else '–')} |",
        "| Postgres statements per request (BEGIN and COMMIT included, all the service ran) "
        f"| {cells(lambda p: f'{p.statements:.1f}' if p.statements is not None else '–')} |",
        f"| CPU of the load generator per request, ms | {cells(lambda p: f'{p.client_cpu_ms:.2f}')} |",
        f"| 1-minute load average as the phase started | {cells(lambda p: f'{p.load:.2f}')} |",
        "| machine CPU busy during the phase, all processes (100% = both cores) "
        f"| {cells(lambda p: f'{p.machine_busy:.0f}%')} |",
    ]
    return "\n".join(lines)


def statement_report(phases: dict[str, HandoffPhase]) -> str:
    """The costliest Postgres statements of each phase (calls and ms per request), for the console."""
    lines = []
    for name, phase in phases.items():
        for calls, ms, query in phase.top:
            lines.append(f"{name:7} {calls:5.2f} calls {ms:6.3f} ms  {query[:120]}")
    return "\n".join(lines)


def feedback_report(timing: FeedbackTiming) -> str:
    t = timing

    def ms(pair: tuple[float, float]) -> str:
        return f"{pair[0]:.1f} ms | {pair[1]:.1f} ms"

    ceiling = f"raw aiokafka consume: {t.raw_rate:,.0f}/s"
    return "\n".join(
        [
            f"| feedback, {HANDOFFS:,} handoffs ({t.events:,} lifecycle events) "
            "| leadflow | ceiling (same run) | ratio |",
            "| --- | ---: | --- | ---: |",
            f"| consumer, one process, events → facts | {t.consumer_rate:,.0f} events/s | {ceiling} "
            f"| {t.consumer_rate / t.raw_rate:.2f} |",
            f"| `leadflow feedback rebuild` | {t.rebuild_rate:,.0f} events/s | {ceiling} "
            f"| {t.rebuild_rate / t.raw_rate:.2f} |",
            "",
            f"| feedback API, one request at a time ({API_REQUESTS} each) | p50 | p99 |",
            "| --- | ---: | ---: |",
            f"| `GET /v1/metrics/return-rate/groups?by=source&window=90d` | {ms(t.groups_ms)} |",
            f"| `GET /v1/metrics/funnel?cohort=week&cohorts=12` | {ms(t.funnel_ms)} |",
            f"| ceiling: `GET /healthz` of the same process | {ms(t.healthz_ms)} |",
        ]
    )
