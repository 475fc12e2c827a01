"""`python -m bench [--only PHASE]`, what `make bench` runs; `--help` lists the phases."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Literal, TypeVar

from bench.accounts import accounts_report, run_accounts
from bench.privacy import run_privacy
from bench.report import (
    backtest_memory_report,
    figures_report,
    figures_table,
    handoff_report,
    report,
    scoring_history_report,
    served_report,
    statement_report,
)
from bench.runs import run, run_backtest, run_handoff, run_intake, run_scoring_history, run_tracking
from bench.stack import ROOT
from leadflow.devstack.broker import BrokerKind

Broker = BrokerKind | Literal["auto"]
T = TypeVar("T")


def in_scratch(phase: Callable[[Path], Coroutine[Any, Any, T]]) -> T:
    """Run one phase on a stack of its own, in a scratch directory removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as tmp:
        return asyncio.run(phase(Path(tmp)))


def training_phase(broker: Broker) -> str:
    from bench.training import training_report, training_timing

    return training_report(in_scratch(lambda tmp: training_timing(tmp, broker)))


def model_active_phase(broker: Broker) -> str:
    from bench.model_active import model_active, model_active_report

    return model_active_report(in_scratch(lambda tmp: model_active(tmp, broker)))


def feature_state_phase(broker: Broker) -> str:
    from bench.feature_state import feature_cost_report, feature_costs

    return feature_cost_report(feature_costs())  # in-process: no broker, no Postgres


def retention_phase(broker: Broker) -> str:
    from bench.retention import retention_report, retention_timings

    return retention_report(in_scratch(retention_timings))  # Postgres only: no broker


def handoff_phase(broker: Broker) -> str:
    figures = in_scratch(lambda tmp: run_handoff(tmp, broker))
    return f"{statement_report(figures)}\n\n{handoff_report(figures)}"


def intake_phase(broker: Broker) -> str:
    figures, costs, used = in_scratch(lambda tmp: run_intake(tmp, broker))
    table = figures_report(figures, broker=used, command="python -m bench --only intake")
    return f"{table}\n\n{served_report(costs)}"


def backtest_phase(broker: Broker) -> str:
    timing, memory = in_scratch(lambda tmp: run_backtest(tmp, broker))
    return (
        f"backtest: {timing.events:,} events of {timing.leads:,} leads in {timing.backtest_s:.1f} s "
        f"(reading alone: {timing.read_s:.1f} s)\n\n{backtest_memory_report(memory)}"
    )


def tracking_phase(broker: Broker) -> str:
    figure, used = in_scratch(lambda tmp: run_tracking(tmp, broker))
    return f"broker: {used}\n\n{figures_table([figure])}"


# `--only NAME`: one part alone, and what it measures.
PHASES: dict[str, tuple[Callable[[Broker], str], str]] = {
    "handoff": (handoff_phase, "the handoff API latency"),
    "accounts": (
        lambda b: accounts_report(in_scratch(lambda tmp: run_accounts(tmp, b))),
        "roll-up on/off, matching",
    ),
    "intake": (intake_phase, "its throughput figures"),
    "retention": (retention_phase, "pruning, Postgres only"),
    "tracking": (tracking_phase, "/v1/batch beside /v1/events/batch"),
    "training": (training_phase, "model train on 1M events"),
    "feature_state": (feature_state_phase, "a judged rescore's features by history length, state vs history"),
    "model_active": (model_active_phase, "end-to-end p50/p99 at 1,000 events/s, no model vs a model active"),
    "privacy": (lambda b: in_scratch(lambda tmp: run_privacy(tmp, b)).report(), "erasure with 100,000 leads"),
    "scoring_history": (
        lambda b: scoring_history_report(in_scratch(lambda tmp: run_scoring_history(tmp, b))),
        "scoring's rate at 0 to 10,000 prior events per lead",
    ),
    "backtest": (backtest_phase, "time and peak RSS over 1M events"),
}


def main(only: str | None = None, broker: Broker = "auto") -> None:
    if only is not None:
        phase, _ = PHASES[only]
        print(f"\n{phase(broker)}\n")
        return
    figures, latencies, handoff, feedback, backtest, history, memory, used = in_scratch(
        lambda tmp: run(tmp, broker)
    )
    text = report(figures, latencies, handoff, feedback, backtest, history, memory, broker=used)
    # Each on a stack of its own: the account roll-up, then learning (training and recommend on
    # 1M events, their time and peak RSS; the end-to-end p99 at 1,000 events/s with a model).
    text += "\n\n" + accounts_report(in_scratch(lambda tmp: run_accounts(tmp, broker)))
    text += "\n\n" + training_phase(broker)
    text += "\n\n" + model_active_phase(broker)
    print(f"\n{statement_report(handoff)}\n\n{text}\n")
    out = ROOT / "docs" / "benchmark-latest.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text + "\n")
    print(f"written to {out.relative_to(ROOT)}; copy notable runs into docs/benchmarks.md")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure throughput and latency against ceilings from the same run.",
    )
    parser.add_argument(
        "--only",
        choices=list(PHASES),
        help="run one part alone: " + ", ".join(f"{name} ({what})" for name, (_, what) in PHASES.items()),
    )
    parser.add_argument(
        "--broker",
        choices=["auto", "apache", "embedded"],
        default="auto",
        help="auto (default): Apache Kafka where Java 17+ is here, else the embedded broker",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse()
    main(arguments.only, arguments.broker)
