"""The `plan` subcommand: instances, memory, CPU and bandwidth N viewers need, per transport of a run.

Exit codes: 0 planned; 2 bad input (an option out of range, a missing, truncated or malformed run
directory, a transport the run lacks), with one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rtcap.reports.schema import META_FILE
from rtcap.reports import plan as planner
from rtcap.reports.plan import RESOURCE_WORDS, PlanInputError, PlanInputs
from rtcap.reports.rundir import RunDirError, load_run
from rtcap.reports.summary import build_summary
from rtcap.reports.units import (fmt_bitrate, fmt_bytes_decimal, fmt_bytes_to_tib, fmt_cores,
                                 fmt_int_or_no_limit)

PROG = "rtcap plan"
UNIT_WORDS = {"message": ("msg/s", "message"), "request": ("req/s", "request")}
EXIT_BAD_INPUT = 2

# What a plan is made for. The unit grammar accepts any positive number ("1e300" included); past these
# bounds the arithmetic overflows or the figures mean nothing, so the inputs are refused instead.
MAX_VIEWERS = 10_000_000_000
"""--viewers: more than people on Earth."""
UPDATE_RATE_RANGE = (0.000001, 1_000.0)
"""--update-rate per second: from one per ~11.6 days to one per millisecond."""
FRESHNESS_RANGE_S = (0.001, 86_400.0)
"""--freshness: from a millisecond to a day."""
MAX_INSTANCE_MEMORY = 2 ** 50
"""--instance-memory: 1 PiB."""
MAX_INSTANCE_CORES = 1024
"""--instance-cores."""


def _plain(x: float) -> str:
    """A bound without exponent notation: 0.000001, 10,000,000,000."""
    return f"{x:,.6f}".rstrip("0").rstrip(".")


def _arg(parse: Callable[[str], float], low: float | None = None, high: float | None = None,
         unit: str = "") -> Callable[[str], float]:
    """Wrap a unit parser so argparse prints its message and exits 2; refuse values outside [low, high]."""
    def convert(text: str) -> float:
        try:
            value = parse(text)
        except PlanInputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        except (OverflowError, ValueError):  # e.g. '1e400' viewers: infinity has no whole number
            value = math.inf
        if not math.isfinite(value) or (low is not None and value < low) or (high is not None and value > high):
            span = (f"from {_plain(low)} to {_plain(high)}" if low is not None and high is not None
                    else f"at most {_plain(high)}" if high is not None else f"at least {_plain(low)}")
            raise argparse.ArgumentTypeError(f"{text!r} is out of range: must be {span}{unit}")
        return value
    return convert


def _names(text: str) -> list[str]:
    """A comma list of transport names."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one transport, e.g. poll,sse,ws")
    return names


def add_plan_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `plan` arguments (run directory, workload, instance size, output format) to `parser`."""
    parser.description = parser.description or __doc__
    parser.add_argument("run", type=Path, metavar="RUN", help="run directory (runs/<name>) whose model to use")
    parser.add_argument("--viewers", type=_arg(planner.parse_count, high=MAX_VIEWERS), required=True, metavar="N",
                        help="concurrent viewers to plan for: 100000, 100k, 1.5M")
    parser.add_argument("--update-rate", type=_arg(planner.parse_rate, *UPDATE_RATE_RANGE, " updates per second"),
                        required=True, metavar="RATE",
                        help="updates each viewer receives: 1/s, 10/min, 0.5 (per second)")
    parser.add_argument("--freshness", type=_arg(planner.parse_duration, *FRESHNESS_RANGE_S, " seconds"),
                        required=True, metavar="DURATION",
                        help="how stale a viewer may be: 1s, 500ms (the poll interval for polling, the "
                             "delivery p99 limit for push)")
    parser.add_argument("--instance-memory", type=_arg(planner.parse_size, high=MAX_INSTANCE_MEMORY, unit=" bytes (1 PiB)"),
                        required=True, metavar="SIZE",
                        help="memory of one instance: 4GiB, 512MiB, 4G (K/M/G binary; kB/MB/GB decimal)")
    parser.add_argument("--instance-cores", type=_arg(planner.parse_cores, high=MAX_INSTANCE_CORES), default=1.0,
                        metavar="N",
                        help="cores one instance may use (default 1: one Python process uses one core)")
    parser.add_argument("--headroom", type=_arg(planner.parse_headroom), default=planner.DEFAULT_HEADROOM, metavar="FRACTION",
                        help="share of each instance's memory and CPU kept free: 20%% or 0.2 (default 20%%)")
    parser.add_argument("--transports", type=_names, default=None, metavar="LIST",
                        help="comma list of transports to plan (default: every transport in RUN)")
    parser.add_argument("--format", choices=("table", "json"), default="table",
                        help="table for people (default), json for machines")


def _key(x: float | None) -> float:
    """Sort key where None (unbounded) is the largest."""
    return math.inf if x is None else x


def fmt_range(values: Sequence[Any], fmt: Callable[[Any], str]) -> str:
    """'expected (least–most) unit', or just 'expected' when the range is one figure."""
    # The low scenario gives the most viewers per instance: print the range smallest first.
    lo, hi = sorted((values[0], values[2]), key=_key)
    a, mid, b = fmt(lo), fmt(values[1]), fmt(hi)
    if a == mid == b:
        return mid
    units = {t.rpartition(" ")[2] for t in (a, mid, b)}
    if len(units) == 1 and " " in mid and not mid[0].isalpha():
        # One unit for the three figures: say it once ("118.9 (118.8–119.1) Mbit/s").
        unit = units.pop()
        a, mid, b = (t.rpartition(" ")[0] for t in (a, mid, b))
        return f"{mid} ({a}–{b}) {unit}"
    return f"{mid} ({a}–{b})"


def notes(p: Mapping[str, Any]) -> list[str]:
    """Plain-language lines explaining one transport's plan (why it binds, what was not measured)."""
    if not p["available"]:
        return []
    unit = UNIT_WORDS[p["unit"]][1]
    per = p["per_instance"]
    out = ["viewers per instance: " + ", ".join(
        f"{RESOURCE_WORDS[r]} {fmt_range(per[r], fmt_int_or_no_limit)}" for r in planner.RESOURCES)]
    conns = fmt_int_or_no_limit(per["connections"][1])
    if p["connections_lower_bound"]:
        bound = (f"connections at SLO ({conns}) is a lower bound: delivery p99 stayed within "
                 f"{p['latency_limit_ms']:,.0f} ms at every valid step measured")
        if p["instances_within_measured"][1] > p["instances"][1]:
            bound += (", so the plan extrapolates the memory and CPU fits beyond it; "
                      f"{fmt_range(p['instances_within_measured'], fmt_int_or_no_limit)} instances would keep each "
                      "within what was measured (raise --steps, and --processes, to find the real limit)")
        else:
            bound += "; memory or CPU binds first, so the unmeasured limit does not change the plan"
        out.append(bound)
    else:
        out.append(f"connections at SLO: {conns} held with delivery p99 <= {p['latency_limit_ms']:,.0f} ms; "
                   "a valid step with more load did not meet it")
    if p.get("broker"):
        out.append(broker_note(p["broker"]))
    if p["bandwidth_why"]:
        out.append(f"bandwidth unavailable: {p['bandwidth_why']}")
    else:
        out.append(f"bandwidth over 30 days: {fmt_range(p['bandwidth_month_bytes'], fmt_bytes_decimal)} "
                   f"(both directions, wire bytes per {unit} as measured)")
    return out


def broker_note(b: Mapping[str, Any]) -> str:
    """The broker line item in words: its traffic against what one broker carries, and whether it binds."""
    n = b["workers_per_instance"]
    head = (f"broker: each instance is {n} worker{'s' * (n != 1)} as measured (give --instance-cores {n} if each "
            f"runs on its own core); one shared broker carries {fmt_range(b['msgs_per_s'], fmt_int_or_no_limit)} msgs/s "
            f"for {fmt_range(b['workers'], fmt_int_or_no_limit)} workers")
    if b["capacity_msgs_per_s"] is None:
        return head + "; its CPU per message was not measured, so its limit is unknown"
    tail = (f" against ~{fmt_int_or_no_limit(b['capacity_msgs_per_s'])} msgs/s on its one thread "
            f"({b['cpu_per_msg'] * 1e6:,.1f} µs per message measured, idle included)")
    if b["binds"]:
        return (head + tail + f": the broker, not the workers, is the limit: "
                f"{fmt_range(b['brokers'], fmt_int_or_no_limit)} brokers (shard channels) or fewer, larger workers")
    return head + tail + f", {fmt_range(b['cores'], fmt_cores)} cores: within one broker"


def model_line(m: Mapping[str, Any]) -> str:
    """The fitted figures a plan uses, in words."""
    unit = UNIT_WORDS[m["unit"]][1]
    parts = []
    mem, cpu, bw = m["memory"], m["cpu"], m["bandwidth"]
    if "why" not in mem:
        per = m.get("connections_per_viewer") or 1
        unit_word = "/conn" if per == 1 else f"/viewer ({per:g} connections each)"
        parts.append(f"memory {fmt_bytes_to_tib(mem['slope'])}{unit_word} "
                     f"(95% CI {fmt_bytes_to_tib(mem['slope_lo'])}–{fmt_bytes_to_tib(mem['slope_hi'])}) "
                     f"+ {fmt_bytes_to_tib(mem['baseline'])} baseline")
    if "why" not in cpu:
        parts.append(f"CPU {cpu['per_unit'] * 1e6:,.1f} µs per {unit} (95% CI {cpu['per_unit_lo'] * 1e6:,.1f}–"
                     f"{cpu['per_unit_hi'] * 1e6:,.1f}) + {cpu['idle_cores']:.3f} cores idle")
    if "why" not in bw:
        parts.append(f"{bw['per_unit']:,.0f} wire B per {unit}")
    return "model: " + ("; ".join(parts) if parts else "none")


def _columns(rows: list[list[str]]) -> list[str]:
    """Left-aligned text columns, two spaces apart."""
    widths = [max(len(r[i]) for r in rows if len(r) > i) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() if len(r) == len(widths)
            else "  ".join([r[0].ljust(widths[0]), *r[1:]]) for r in rows]


def format_table(result: Mapping[str, Any], models: Sequence[Mapping[str, Any]], run: str) -> str:
    """The plan as text: inputs, one row per transport, notes, then the formulas."""
    i = result["inputs"]
    cores = f"{i['instance_cores']:g} core{'s' * (i['instance_cores'] != 1)}"
    lines = [f"capacity plan from run {run}",
             (f"{i['viewers']:,.0f} viewers, update rate {i['update_rate']:g}/s, freshness {i['freshness_s']:g} s; "
              f"instance {fmt_bytes_to_tib(i['instance_memory'])}, {cores}, {i['headroom']:.0%} headroom"), ""]
    rows = [["transport", "work", "instances", "binds", "by memory", "by CPU", "by conns", "within measured",
             "memory", "CPU cores", "bandwidth"]]
    for p in result["plans"]:
        work = f"{fmt_int_or_no_limit(p['work_per_s'])} {UNIT_WORDS[p['unit']][0]}"
        if not p["available"]:
            rows.append([p["transport"], work, f"unavailable: {p['why']}"])
            continue
        by = p["instances_by"]
        rows.append([p["transport"], work, fmt_range(p["instances"], fmt_int_or_no_limit),
                     ", ".join(RESOURCE_WORDS[r] for r in p["binding"]),
                     *(fmt_range(by[r], fmt_int_or_no_limit) for r in planner.RESOURCES),
                     fmt_range(p["instances_within_measured"], fmt_int_or_no_limit),
                     fmt_range(p["memory_bytes"], fmt_bytes_to_tib), fmt_range(p["cpu_cores"], fmt_cores),
                     "–" if p["bandwidth_why"] else fmt_range(p["bandwidth_bytes_per_s"], fmt_bitrate)])
    lines += _columns(rows) + [""]
    for p, m in zip(result["plans"], models):
        lines += [f"{p['transport']}:"] + [f"  {n}" for n in [*notes(p), model_line(m)]]
    lines += ["", "figures are expected (low–high): the 95% CIs of the memory and CPU fits carried through",
              "how:"] + [f"  - {f}" for f in result["formulas"]]
    return "\n".join(lines)


def run_plan(args: argparse.Namespace) -> int:
    """Compute and print the plan described by parsed `args`; return the process exit code."""
    try:
        run = load_run(args.run)
        if run.summary is None:
            # Read-only: a plan never writes into the run directory (`rtcap report` does that).
            run.summary = build_summary(run.meta, run.steps, run.path / META_FILE)
        names = list(run.summary.get("transports") or {})
        unknown = [t for t in args.transports or [] if t not in names]
        if unknown:
            raise RunDirError(f"{args.run}: no {', '.join(unknown)} in this run (it has {', '.join(names)})")
        models = planner.run_models(run, args.transports)
        inputs = PlanInputs(viewers=args.viewers, update_rate=args.update_rate, freshness_s=args.freshness,
                            instance_memory=args.instance_memory, instance_cores=args.instance_cores,
                            headroom=args.headroom)
    except (RunDirError, PlanInputError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    result = planner.plan(models, inputs)
    if args.format == "json":
        print(json.dumps({"run": run.name, "path": str(run.path), **result, "models": models},
                         indent=2, allow_nan=False))
    else:
        print(format_table(result, models, f"{run.name} ({run.path})"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point (`python -m rtcap.reports.plan_cli RUN ...`)."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    add_plan_arguments(parser)
    return run_plan(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
