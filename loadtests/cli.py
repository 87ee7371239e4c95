"""The `rtcap` command: `run` a capacity sweep, `report` on runs, `target serve` the reference server.

Exit codes (one meaning each, so CI can tell a regression from a typo):
  0    done (and every threshold met)
  1    a threshold was not met, or the sweep was aborted early (--abort-early)
  2    bad input: an option, a target adapter, a run directory or an environment (out-dir, open-file limit)
       refused before anything starts, with one line on stderr naming what to change
  3    the run failed after it started (target check failed, target died, Locust crashed)
  130  interrupted by SIGINT (Ctrl-C); 143: stopped by SIGTERM
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from pathlib import Path

from rtcap.loadtests import options as declared
from rtcap.loadtests.values import MAX_INTERVAL_S, http_url, number
from rtcap.reports import schema

QUICK = {"steps": "40,80,120,160,200", "hold": 6.0}
"""--quick: a short sweep (the options it does not name keep loadtests/options.py's defaults)."""
QUICK_STEPS = [40, 80, 120]
"""--quick with --scenario: three steps, enough for a memory fit."""
SCENARIO_NAMES = ("cache-5s", "live-scores", "long-polling", "conditional", "signalling", "rpc-over-ws", "presence",
                  "fan-out")
"""loadtests/run/scenarios.py SCENARIOS (kept here so `rtcap --help` imports nothing heavy; a test checks both agree)."""


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `rtcap run`: the presets here, every other option as loadtests/options.py declares it."""
    parser.add_argument("--quick", action="store_true", help=f"short sweep: steps {QUICK['steps']}, hold {QUICK['hold']:g} s")
    parser.add_argument("--scenario", choices=sorted(SCENARIO_NAMES),
                        help="a preset per claim of the articles rtcap started from (its own transports, server and "
                             "user options, one run per arm, a verdict in scenario.json and summary.md): "
                             + ", ".join(sorted(SCENARIO_NAMES)))
    declared.add_run_arguments(parser)


def run_command(args: argparse.Namespace) -> int:
    """`rtcap run`."""
    from rtcap.loadtests.run.sweep import RunError, RunOptions, run_sweep

    from rtcap.reports.gate import gather
    from rtcap.reports.thresholds import ThresholdError

    try:
        thresholds = gather(args.thresholds)  # before any load: a typo must not cost a run
    except ThresholdError as error:
        print(f"rtcap run: error: {error}", file=sys.stderr)
        return 2
    if args.abort_early and not thresholds:
        print("rtcap run: error: --abort-early needs at least one threshold (--threshold, RTCAP_THRESHOLDS, rtcap.toml)",
              file=sys.stderr)
        return 2
    values = {o.dest: getattr(args, o.dest) for o in declared.RUN}
    if args.quick:  # the preset, where the option was not given
        from rtcap.loadtests.generator.staircase import parse_steps

        values["steps"] = values["steps"] or parse_steps(QUICK["steps"])
        values["hold"] = values["hold"] if values["hold"] is not None else QUICK["hold"]
    values = {dest: declared.default(dest) if value is None else value for dest, value in values.items()}
    hold = values["hold"]
    settle = values["settle"] = args.settle if args.settle is not None else min(declared.default("settle"), hold / 3)
    if not 0 <= settle < hold:
        print(f"rtcap run: error: --settle {settle:g} must be at least 0 and below --hold {hold:g}", file=sys.stderr)
        return 2
    if values["settle_max"] and values["settle_max"] < settle:
        print(f"rtcap run: error: --settle-max {values['settle_max']:g} must be 0 or at least --settle {settle:g}",
              file=sys.stderr)
        return 2
    if args.server_args and args.host:
        print("rtcap run: error: --server-args is for a server rtcap starts, not one at --host", file=sys.stderr)
        return 2
    if args.target_pid and not args.host:
        print("rtcap run: error: --target-pid goes with --host", file=sys.stderr)
        return 2
    values["name"] = args.name or datetime.now().strftime("run-%Y%m%d-%H%M%S")
    values["thresholds"] = [t.text for t in thresholds]
    options = RunOptions(**values)
    if args.abort_early:
        from rtcap.reports.thresholds import final_once_missed

        late = [t.text for t in thresholds if not final_once_missed(t, per_step=True)]
        if late:
            print(f"note: judged at the end only (more data can still meet them): {', '.join(late)}", flush=True)
    if args.scenario:
        return _run_scenario(args, options)
    refused = _preflight([options], options)
    if refused is not None:
        return refused
    from rtcap.loadtests.run.interrupt import Interrupted

    failed = 0
    try:
        run_dir = run_sweep(options, say=lambda line: print(line, flush=True))
    except Interrupted as stop:
        where = options.out_dir / options.name
        print(f"rtcap run: {stop}; what was measured is in {where}", file=sys.stderr)
        return stop.exit_code
    except RunError as error:
        print(f"rtcap run: error: {error}", file=sys.stderr)
        run_dir = getattr(error, "run_dir", None)
        if run_dir is None:
            return getattr(error, "exit_code", 3)  # a limit found once the target started is bad input (2)
        failed = 3  # the target died: what was measured is written and judged, and the run still failed
    print(f"run directory: {run_dir}")
    if options.report:
        print(f"report: {run_dir / schema.REPORT_FILE}")
    code = 0
    if thresholds:
        import json

        from rtcap.reports.gate import check_run, early_verdicts

        aborted = json.loads((run_dir / schema.META_FILE).read_text(encoding="utf-8")).get("aborted")
        outcomes = check_run(run_dir, thresholds, verdicts=early_verdicts(aborted) if aborted else ())
        code = 0 if all(o.ok for o in outcomes) and not aborted else 1
    from rtcap.reports.exports import publish_markdown
    from rtcap.reports.rundir import RunDirError

    try:
        # After the thresholds, so the summary (for a CI job summary or a PR comment) carries their verdicts.
        print("summary: " + ", ".join(map(str, publish_markdown(run_dir, os.environ))))
    except (RunDirError, OSError) as error:
        print(f"rtcap run: warning: no markdown summary: {error}", file=sys.stderr)
    return failed or code


def _preflight(runs: list, base: object) -> int | None:
    """Check what the runs need of their target and this machine before any of them starts: 2 when refused.

    `runs` are the RunOptions of a single run, or of every arm of a scenario; `base` names the directory.
    """
    from rtcap.loadtests.run.validate import PreflightError, preflight

    try:
        notes = preflight(runs, base.out_dir, base.name)  # type: ignore[attr-defined]
    except PreflightError as error:
        # An adapter with several mistakes lists them one per line; each line stands on its own.
        for line in str(error).splitlines():
            print(f"rtcap run: error: {line}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"note: {note}", flush=True)
    return None


def _run_scenario(args: argparse.Namespace, options: object) -> int:
    """`rtcap run --scenario NAME`: every arm, then the claim against what was measured."""
    from rtcap.loadtests.run.sweep import RunError
    from rtcap.loadtests.run.scenarios import SCENARIOS, arm_options, run_scenario

    if args.transports or args.thresholds or args.abort_early:
        print("rtcap run: error: --scenario sets its own transports; --transports, --threshold and --abort-early "
              "go with a single run", file=sys.stderr)
        return 2
    started = [arm.name for arm in SCENARIOS[args.scenario].arms if arm.server_args]
    if args.host and started:
        print(f"rtcap run: error: scenario {args.scenario} starts its own servers with options (arms "
              f"{', '.join(started)}); it cannot run against --host", file=sys.stderr)
        return 2
    steps = args.steps or (QUICK_STEPS if args.quick else None)
    hold = args.hold if args.hold is not None else (QUICK["hold"] if args.quick else None)
    scenario = SCENARIOS[args.scenario]
    refused = _preflight([arm_options(scenario, arm, options, steps, hold, args.settle) for arm in scenario.arms],
                         options)
    if refused is not None:
        return refused
    from rtcap.loadtests.run.interrupt import Interrupted

    try:
        root = run_scenario(SCENARIOS[args.scenario], options, steps, hold, args.settle,
                            say=lambda line: print(line, flush=True))
    except Interrupted as stop:
        print(f"rtcap run: {stop}; what was measured is in {options.out_dir}", file=sys.stderr)  # type: ignore[attr-defined]
        return stop.exit_code
    except RunError as error:
        print(f"rtcap run: error: {error}", file=sys.stderr)
        return 3
    print(f"scenario directory: {root}")
    print(f"summary: {root / schema.SUMMARY_MD_FILE}")
    if options.report:  # type: ignore[attr-defined]
        print(f"report: {root / schema.REPORT_FILE}")
    return 0


def check_command(args: argparse.Namespace) -> int:
    """`rtcap check-target`: 0 when every declared transport and the process check pass, 1 otherwise."""
    from rtcap.loadtests.run.check import check_process, check_transport, format_table
    from rtcap.targets.adapter import AdapterError, load_adapter
    from rtcap.targets.launch import LaunchError, launch

    try:
        adapter = load_adapter(args.file)
    except (AdapterError, OSError) as error:
        print(f"rtcap check-target: error: {error}", file=sys.stderr)
        return 2
    transports = args.transports or list(adapter.transports)
    missing = [t for t in transports if t not in adapter.transports]
    if missing:
        print(f"rtcap check-target: error: {adapter.source} declares no {', '.join(missing)} transport", file=sys.stderr)
        return 2
    launched = None
    try:
        if args.host:
            live, pid = adapter.with_base_url(args.host.rstrip("/")), None
        elif adapter.process.start is not None:
            launched = launch(adapter, adapter.publish.rate, adapter.publish.payload)
            live, pid = launched.adapter, launched.pid
            print(f"started {' '.join(launched.command)} -> {live.base_url} (pid {pid})")
        else:
            live, pid = adapter, None
        results = [check_transport(live, name, timeout=args.timeout) for name in transports]
        process = check_process(live, pid)
    except LaunchError as error:
        print(f"rtcap check-target: error: {error}", file=sys.stderr)
        return 1
    finally:
        if launched is not None:
            launched.stop()
    print(f"target {adapter.name} at {live.base_url}, publish mode {adapter.publish.mode}")
    print(format_table(results, process))
    return 0 if all(r.ok for r in results) and process.ok else 1


def build_parser() -> argparse.ArgumentParser:
    """The whole `rtcap` command line."""
    parser = argparse.ArgumentParser(prog="rtcap", description="Measure what real-time transports cost: polling, SSE, WebSockets.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a capacity sweep and write a run directory and an HTML report")
    add_run_arguments(run)
    report = commands.add_parser("report", help="render run directories into a self-contained HTML report (or --format json|md)")
    from rtcap.reports.cli import add_report_arguments

    add_report_arguments(report)
    plan = commands.add_parser("plan", help="instances, memory, CPU and bandwidth N viewers need, from a run's model")
    from rtcap.reports.plan_cli import add_plan_arguments

    add_plan_arguments(plan)
    check = commands.add_parser("check-target", help="check a target adapter against its server before any load")
    check.add_argument("file", type=Path, help="target adapter file (TOML)")
    check.add_argument("--transports", type=declared.transport_list,
                       help="comma list of transports to check (default: all the adapter declares)")
    check.add_argument("--host", type=http_url, help="check a server already running at this base URL (instead of starting one)")
    check.add_argument("--timeout", type=number(float, 0, MAX_INTERVAL_S, above=True), default=10.0,
                       help="seconds to wait for events (default 10)")
    target = commands.add_parser("target", help="the bundled reference target")
    target.add_argument("action", choices=["serve"], help="serve: run the reference server (see `rtcap target serve --help`)")
    from rtcap.loadtests.run.agent import add_agent_parser
    from rtcap.loadtests.run.worker import add_worker_parser

    add_worker_parser(commands)
    add_agent_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `rtcap` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["target", "serve"]:
        from rtcap.targets.reference.__main__ import main as serve_main

        return serve_main(argv[2:]) or 0
    args = build_parser().parse_args(argv)
    if args.command == "run":
        return run_command(args)
    if args.command == "check-target":
        return check_command(args)
    if args.command == "report":
        from rtcap.reports.cli import run_report

        return run_report(args)
    if args.command == "plan":
        from rtcap.reports.plan_cli import run_plan

        return run_plan(args)
    if args.command == "worker":
        from rtcap.loadtests.run.worker import worker_command

        return worker_command(args)
    if args.command == "agent":
        from rtcap.loadtests.run.agent import agent_command

        return agent_command(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
