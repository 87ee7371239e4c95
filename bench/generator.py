"""What the load generator itself costs: memory per held connection and CPU per delivered event.

    python -m rtcap.bench.generator            # about 17 minutes on 2 cores
    python -m rtcap.bench.generator --quick    # about 6 minutes
    python -m rtcap.bench.generator --arms rtcap,stock-poll --transports poll   # polling only, side by side

Every arm holds connections to a fresh nginx+nchan (a C server: targets/examples/install.sh installs it)
while `--rate` events/s go to the one channel every connection subscribes to, climbing the same steps:
- **rtcap**: `rtcap run --target targets/examples/nchan/adapter.toml --transports ws,sse,poll`, the whole
  product (users, recorder, samplers); the generator's RSS and CPU come from the run's samples.csv (role
  "generator"), its delivered events from steps.csv, and whether a step was valid (generator CPU and timer
  lag judged as in every run) from its flags;
- **crowd**: the same for ws and sse with `--held-per-user 50`: each Locust user holds 50 connections, read
  from the event loop (loadtests/transports/crowd.py) instead of a greenlet each;
- **held**: one generator process holding 5,000, 10,000 and 19,000 WebSocket connections at 0.05 events/s
  each (`--held-per-user 100`; the open-file limit is raised to 65,536 for it, which root may do);
- **stock**: bench/stock_ws.py, plain gevent + websocket-client recording nothing, sampled here (psutil);
- **stock-poll**: bench/stock_poll.py, plain gevent + geventhttpclient (one keep-alive client per viewer)
  making the same conditional GET polls on the same schedule as rtcap's poll users, recording nothing,
  sampled here; against it, rtcap's poll arm reports polls per CPU-second and memory per viewer;
- **artillery**: Artillery 2's ws engine (`npm install artillery@2` into a temporary folder) when Node and
  npm are here, sampled here; it receives without parsing or timing, so its events are counted as the
  events published times the connections nchan reported held. Without Node it is skipped, and says so.

Per arm: the generator's memory per held connection (least-squares slope of RSS against connections over
the steps), CPU seconds per 1,000 delivered events and delivered events per CPU-second at each step, polls
per CPU-second (rtcap's poll users and the stock poll client), and the largest step rtcap counted valid.
Then the report stage at scale (bench/report_scale.py). A table goes to stdout and everything to
bench/results/generator-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd

from rtcap.bench import report_scale
from rtcap.bench.arms import NOFILE, QUICK, Arm, Plan, Step, nchan_adapter
from rtcap.bench.sampled_arms import artillery_arm, raise_open_files, stock_arm, stock_poll_arm
from rtcap.bench.truth import ROOT, _rtcap
from rtcap.reports import schema

RESULTS = ROOT / "bench" / "results"


# -- the rtcap arm ----------------------------------------------------------------------------------------

def rtcap_arms(work: Path, plan: Plan, name: str = "rtcap", transports: str | None = None, per_user: int = 1,
               steps: tuple[int, ...] | None = None, rate: float | None = None) -> list[Arm]:
    """One `rtcap run` against nchan; an arm per transport, read from its run directory."""
    _rtcap("run", "--target", str(plan.adapter), "--transports", transports or plan.transports, "--steps",
           ",".join(map(str, steps or plan.steps)), "--hold", str(plan.hold), "--rate", str(rate or plan.rate),
           "--poll-interval", str(plan.poll_interval), "--spawn-rate", "500", "--held-per-user", str(per_user),
           "--out-dir", str(work), "--name", name)
    return read_arms(work / name, "" if per_user == 1 else f", {per_user} per user")


def read_arms(run: Path, label: str) -> list[Arm]:
    """An arm per transport of a run directory: the generator's samples and the steps' figures."""
    steps = pd.read_csv(run / schema.STEPS_FILE)
    samples = pd.read_csv(run / schema.SAMPLES_FILE)
    generator = samples[samples["role"] == "generator"]
    arms = []
    for transport, rows in steps.groupby("transport", sort=False):
        arm = Arm(f"rtcap {transport}{label}")
        for row in rows.itertuples():
            window = generator[(generator["transport"] == transport) & (generator["t"] >= row.t_start)
                               & (generator["t"] <= row.t_end)]
            cpu = row.generator_cpu_percent
            arm.steps.append(Step(
                connections=int(row.connections), seconds=float(row.duration_s),
                rss_bytes=float(window["rss_bytes"].mean()) if len(window) else None,
                cpu_s=None if pd.isna(cpu) else float(cpu) / 100.0 * float(row.duration_s),
                delivered=float(row.delivered or 0), requests=float(row.requests or 0),
                valid=bool(row.valid), flags="" if pd.isna(row.flags) else str(row.flags)))
        arms.append(arm)
    return arms


# -- output -----------------------------------------------------------------------------------------------

def table(arms: list[Arm]) -> str:
    """The figures as a markdown table."""
    lines = ["| generator | memory per held connection | connections | delivered/s | CPU s per 1k events | "
             "events per CPU-s | valid |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for arm in arms:
        if arm.skipped:
            lines.append(f"| {arm.name} | skipped: {arm.skipped} | | | | | |")
            continue
        per = arm.bytes_per_connection()
        polled = " poll" in arm.name
        for n, step in enumerate(arm.steps):
            rate = step.requests_per_cpu_s if polled else step.events_per_cpu_s
            unit = "polls" if polled else "events"
            lines.append(" | ".join([
                f"| {arm.name if n == 0 else ''}", f"{per / 1024:.1f} KiB" if n == 0 and per is not None else "",
                f"{step.connections:,}", f"{step.delivered / step.seconds:,.0f}" if step.seconds else "",
                f"{step.cpu_s / step.delivered * 1000:.3f}" if step.cpu_s and step.delivered else "",
                f"{rate:,.0f} {unit}" if rate else "",
                "" if step.valid is None else ("yes" if step.valid else f"no ({step.flags})")]) + " |")
    return "\n".join(lines)


def mean_events_per_cpu_s(arm: Arm) -> float | None:
    """Delivered events per CPU-second over an arm's valid steps (None without any)."""
    valid = [s for s in arm.steps if s.valid and s.cpu_s]
    cpu = sum(s.cpu_s for s in valid)
    return sum(s.delivered for s in valid) / cpu if cpu else None


def mean_polls_per_cpu_s(arm: Arm) -> float | None:
    """Polls per CPU-second over an arm's valid steps (None without any)."""
    valid = [s for s in arm.steps if s.valid and s.cpu_s]
    cpu = sum(s.cpu_s for s in valid)
    return sum(s.requests for s in valid) / cpu if cpu else None


def ratios(arms: list[Arm]) -> str:
    """Each rtcap WebSocket and SSE arm against the stock client and Artillery, and rtcap's poll arm against
    the stock poll client: memory per connection and events (polls) per CPU-second over the valid steps, as
    ratios (above 1: rtcap needs more memory / does more per CPU-second)."""
    references = [a for a in arms if not a.name.startswith("rtcap") and not a.skipped and a.steps]
    lines = []
    for arm in arms:
        if not arm.name.startswith("rtcap") or not arm.steps:
            continue
        polled = " poll" in arm.name
        unit, per_cpu_s = ("polls", mean_polls_per_cpu_s) if polled else ("events", mean_events_per_cpu_s)
        for ref in references:
            if (" poll" in ref.name) != polled:
                continue
            parts = []
            mine, theirs = arm.bytes_per_connection(), ref.bytes_per_connection()
            if mine and theirs:
                parts.append(f"memory per connection {mine / theirs:.2f}x")
            mine, theirs = per_cpu_s(arm), per_cpu_s(ref)
            if mine and theirs:
                parts.append(f"{unit} per CPU-second {mine / theirs:.2f}x")
            if parts:
                lines.append(f"- {arm.name} vs {ref.name}: " + ", ".join(parts))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rtcap.bench.generator", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"steps {QUICK.steps}, {QUICK.hold:g} s each")
    parser.add_argument("--arms", default="rtcap,crowd,held,stock,stock-poll,artillery,report",
                        help="which arms to run (comma-separated: rtcap, crowd, held, stock, stock-poll, artillery, "
                             "report)")
    parser.add_argument("--transports", help=f"the rtcap arm's transports (default: {Plan.transports})")
    parser.add_argument("--steps", help="comma-separated connection counts every arm but held climbs "
                                        f"(default: {','.join(map(str, Plan.steps))}; --quick: "
                                        f"{','.join(map(str, QUICK.steps))})")
    parser.add_argument("--hold", type=float, help="seconds each step is held")
    parser.add_argument("--work", type=Path, help="where run directories go (default: a temporary folder, kept)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    if args.transports:
        plan = replace(plan, transports=args.transports)
    if args.steps:
        plan = replace(plan, steps=tuple(int(s) for s in args.steps.split(",")))
    if args.hold:
        plan = replace(plan, hold=args.hold)
    work = args.work or Path(tempfile.mkdtemp(prefix="rtcap-bench-generator-"))
    work.mkdir(parents=True, exist_ok=True)
    plan = replace(plan, adapter=nchan_adapter(work))
    chosen = set(args.arms.split(","))
    arms: list[Arm] = []
    if "rtcap" in chosen:
        arms += rtcap_arms(work, plan)
    if "crowd" in chosen:
        arms += rtcap_arms(work, plan, "crowd", "ws,sse", plan.held_per_user)
    if "held" in chosen:
        raise_open_files(NOFILE)
        arms += rtcap_arms(work, plan, "held", "ws", 100, plan.many, plan.many_rate)
    if "stock" in chosen:
        arms.append(stock_arm(work, plan))
    if "stock-poll" in chosen:
        arms.append(stock_poll_arm(work, plan))
    if "artillery" in chosen:
        arms.append(artillery_arm(work, plan))
    scale = report_scale.measure(work / "report-scale") if "report" in chosen else None
    print(f"Generator cost against nginx+nchan, {plan.rate:g} events/s to every connection, "
          f"{plan.hold:g} s per step (work: {work})\n")
    print(table(arms))
    if ratio_lines := ratios(arms):
        print("\n" + ratio_lines)
    if scale:
        print("\n" + report_scale.describe(scale))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"generator-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps({"plan": {**asdict(plan), "adapter": str(plan.adapter)}, "host": schema.host_facts(),
                               "arms": [arm.summary() for arm in arms], "ratios": ratios(arms).splitlines(),
                               "report_scale": scale}, indent=2) + "\n")
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
