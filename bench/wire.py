"""Bytes on the wire per client per 5 minutes, laid out like Ably's live-scores table, measured here.

Full-state polling every 10 s (the whole page state each time, as Google's live scores did), delta polling
every 10 s (only what changed, with If-None-Match), SSE and a WebSocket feed, all at the same update rate
and event size, each against a fresh reference target:

    python -m rtcap.bench.wire             # about 6 minutes on 2 cores
    python -m rtcap.bench.wire --quick     # about 2 minutes

Prints the table from the run's steps.csv (reports/wire.py) and leaves the run directory and its HTML report.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rtcap.bench.truth import _rtcap, adapter_with
from rtcap.reports.wire import wire_numbers, wire_table


@dataclass(frozen=True)
class WirePlan:
    """One comparison: who polls how often, what changes how often, and how big the full state is."""

    poll_interval: float = 10.0
    rate: float = 0.2
    payload: int = 16
    state_bytes: int = 8192
    buffer: int = 10
    steps: str = "20,40"
    hold: float = 42.0
    settle_max: float = 30.0
    """Seconds a step may wait for the target's memory to settle (0: a fixed --settle of 2 s)."""
    transports: str = "state,poll,sse,ws"


QUICK = WirePlan(steps="10", hold=24.0)


def run_comparison(work: Path, plan: WirePlan = WirePlan(), name: str = "wire") -> Path:
    """Run the sweep described by `plan` into `work/name`; return the run directory."""
    adapter = adapter_with(work, "--buffer", str(plan.buffer), "--state-bytes", str(plan.state_bytes))
    _rtcap("run", "--target", str(adapter), "--transports", plan.transports, "--steps", plan.steps,
           "--hold", str(plan.hold), "--settle", "2", "--settle-max", str(plan.settle_max), "--rate", str(plan.rate), "--payload", str(plan.payload),
           "--poll-interval", str(plan.poll_interval), "--out-dir", str(work), "--name", name)
    return work / name


def comparison(run_dir: Path) -> pd.DataFrame:
    """The numeric comparison (one row per transport) of a finished run."""
    return wire_numbers(pd.read_csv(run_dir / "steps.csv"))


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short step per transport")
    parser.add_argument("--out-dir", type=Path, help="keep the run directory here (default: a temporary one)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else WirePlan()
    with tempfile.TemporaryDirectory(prefix="rtcap-wire-") as tmp:
        work = args.out_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        run_dir = run_comparison(work, plan)
        table, notes = wire_table(pd.read_csv(run_dir / "steps.csv"))
        print(f"update every {1 / plan.rate:g} s, {plan.payload} B per update; polls every {plan.poll_interval:g} s; "
              f"full state {plan.state_bytes} B + the last {plan.buffer} events; steps {plan.steps} x {plan.hold:g} s")
        print(table.to_string(index=False))
        for note in notes:
            print(f"note: {note}")
        if args.out_dir:
            print(f"run directory: {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
