"""`python -m bench [--only handoff|intake|retention|tracking]`, what `make bench` runs."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Literal

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


def main(only: str | None = None, broker: BrokerKind | Literal["auto"] = "auto") -> None:
    if only == "training":
        from bench.training import training_report, training_timing

        with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as tmp:
            training = asyncio.run(training_timing(Path(tmp), broker))
        print(f"\n{training_report(training)}\n")
        return
    if only == "accounts":
        with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as tmp:
            print(f"\n{accounts_report(asyncio.run(run_accounts(Path(tmp), broker)))}\n")
        return
    if only == "privacy":
        with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as tmp:
            privacy = asyncio.run(run_privacy(Path(tmp), broker))
        print(f"\n{privacy.report()}\n")
        return
    if only == "retention":
        from bench.retention import retention_report, retention_timings

        with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as tmp:
            print(f"\n{retention_report(asyncio.run(retention_timings(Path(tmp))))}\n")
        return
    if only == "handoff":
        with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as tmp:
            handoff = asyncio.run(run_handoff(Path(tmp), broker))
        print(f"\n{statement_report(handoff)}\n\n{handoff_report(handoff)}\n")
        return
    if only == "intake":
        with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as tmp:
            figures, costs, used = asyncio.run(run_intake(Path(tmp), broker))
        table = figures_report(figures, broker=used, command="python -m bench --only intake")
        print(f"\n{table}\n\n{served_report(costs)}\n")
        return
    if only == "scoring_history":
        with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as tmp:
            rates = asyncio.run(run_scoring_history(Path(tmp), broker))
        print(f"\n{scoring_history_report(rates)}\n")
        return
    if only == "backtest":
        with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as tmp:
            timing, memory = asyncio.run(run_backtest(Path(tmp), broker))
        print(
            f"\nbacktest: {timing.events:,} events of {timing.leads:,} leads in {timing.backtest_s:.1f} s "
            f"(reading alone: {timing.read_s:.1f} s)\n\n{backtest_memory_report(memory)}\n"
        )
        return
    if only == "tracking":
        with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as tmp:
            figure, used = asyncio.run(run_tracking(Path(tmp), broker))
        print(f"\nbroker: {used}\n\n{figures_table([figure])}\n")
        return
    with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as tmp:
        figures, latencies, handoff, feedback, backtest, history, memory, used = asyncio.run(
            run(Path(tmp), broker)
        )
    text = report(figures, latencies, handoff, feedback, backtest, history, memory, broker=used)
    with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as tmp:  # a stack of its own
        text += "\n\n" + accounts_report(asyncio.run(run_accounts(Path(tmp), broker)))
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
        choices=[
            "handoff",
            "accounts",
            "intake",
            "retention",
            "tracking",
            "training",
            "privacy",
            "scoring_history",
            "backtest",
        ],
        help=(
            "run one part alone: handoff (the handoff API latency), accounts (roll-up on/off, matching), "
            "intake (its throughput figures), "
            "retention (pruning, Postgres only), tracking (/v1/batch beside /v1/events/batch), "
            "training (model train on 1M events), privacy (erasure with 100,000 leads), "
            "scoring_history (scoring's rate at 0 to 10,000 prior events per lead), "
            "backtest (time and peak RSS over 1M events)"
        ),
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
