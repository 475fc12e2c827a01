"""`python -m bench [--only handoff]`, what `make bench` runs."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from bench.report import handoff_report, report, statement_report
from bench.runs import run, run_handoff
from bench.stack import ROOT


def main(only: str | None = None) -> None:
    if only == "handoff":
        with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as tmp:
            handoff = asyncio.run(run_handoff(Path(tmp)))
        print(f"\n{statement_report(handoff)}\n\n{handoff_report(handoff)}\n")
        return
    with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as tmp:
        figures, latencies, handoff, feedback, backtest = asyncio.run(run(Path(tmp)))
    text = report(figures, latencies, handoff, feedback, backtest)
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
        "--only", choices=["handoff"], help="run one part alone: handoff (the handoff API latency)"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse().only)
