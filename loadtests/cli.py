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

from rtcap.loadtests.transports import limits
from rtcap.loadtests.run.validate import (
    MAX_EVENT_RATE,
    MAX_INTERVAL_S,
    MAX_MS,
    MAX_PAYLOAD_BYTES,
    MAX_PID,
    MAX_PROCESSES,
    MAX_ROOM_SIZE,
    MAX_SECONDS,
    MAX_SPAWN_RATE,
    MAX_USER_RATE,
    http_url,
    number,
    run_name,
)
from rtcap.targets import transports as registry

QUICK = {"steps": "40,80,120,160,200", "hold": 6.0, "settle": 2.0}
QUICK_STEPS = [40, 80, 120]
"""--quick with --scenario: three steps, enough for a memory fit."""
DEFAULT = {"steps": "100,200,300,400,500,600", "hold": 15.0, "settle": 2.0}
SCENARIO_NAMES = ("cache-5s", "live-scores", "long-polling", "conditional", "signalling", "rpc-over-ws", "presence")
"""loadtests/run/scenarios.py SCENARIOS (kept here so `rtcap --help` imports nothing heavy; a test checks both agree)."""


def _transports(text: str) -> list[str]:
    """--transports: a comma list of names from targets/transports.py; any other name is refused."""
    try:
        return registry.checked(name.strip() for name in text.split(",") if name.strip())
    except registry.UnknownTransport as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _server_args(text: str) -> list[str]:
    import shlex

    try:
        return shlex.split(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"cannot split {text!r}: {error}") from None


def _steps(text: str) -> list[int]:
    from rtcap.loadtests.generator.staircase import parse_steps

    try:
        return parse_steps(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `rtcap run`."""
    parser.add_argument("--quick", action="store_true", help=f"short sweep: steps {QUICK['steps']}, hold {QUICK['hold']:g} s")
    parser.add_argument("--scenario", choices=sorted(SCENARIO_NAMES),
                        help="a preset per claim of the articles rtcap started from (its own transports, server and "
                             "user options, one run per arm, a verdict in scenario.json and summary.md): "
                             + ", ".join(sorted(SCENARIO_NAMES)))
    parser.add_argument("--transports", type=_transports, default=None,
                        help=f"comma list from {','.join(registry.NAMES)} (default {','.join(registry.RUN_DEFAULT)}; "
                             "state = full-state polling, longpoll = long polling, signal = WebSocket notice then "
                             "REST fetch, rpc/rest = request/response over WebSocket/HTTP, presence = typing "
                             "indicators in rooms)")
    parser.add_argument("--steps", type=_steps, help=f"users per step, '100,200' or 'start:stop:step' (default {DEFAULT['steps']})")
    parser.add_argument("--hold", type=number(float, 0, MAX_SECONDS, above=True),
                        help=f"seconds each step holds (default {DEFAULT['hold']:g})")
    parser.add_argument("--settle", type=number(float, 0, MAX_SECONDS),
                        help=f"least seconds after a step's users run before measuring (default {DEFAULT['settle']:g})")
    parser.add_argument("--settle-max", type=number(float, 0, MAX_SECONDS), default=30.0,
                        help="then wait up to this many seconds for the target's memory to settle (default 30; 0: fixed --settle)")
    parser.add_argument("--spawn-rate", type=number(float, 0, MAX_SPAWN_RATE, above=True), default=100.0,
                        help="users started per second between steps (default 100)")
    parser.add_argument("--target", type=Path, help="target adapter file (TOML) describing your server; default: the bundled reference target")
    parser.add_argument("--rate", type=number(float, 0, MAX_EVENT_RATE, above=True),
                        help="events per second published during the run (default: the adapter's publish.rate, 1)")
    parser.add_argument("--payload", type=number(int, 0, MAX_PAYLOAD_BYTES),
                        help="payload bytes per event (default: the adapter's publish.payload, 64)")
    parser.add_argument("--poll-interval", type=number(float, 0, MAX_INTERVAL_S, above=True), default=1.0,
                        help="seconds between polls of one viewer (default 1)")
    parser.add_argument("--chat-rate", type=number(float, 0, MAX_USER_RATE), default=0.2,
                        help="chat messages per second per chatter (default 0.2; 0: listen only)")
    parser.add_argument("--no-conditional-get", action="store_true",
                        help="polling viewers send no If-None-Match / If-Modified-Since (every poll gets a full 200)")
    parser.add_argument("--request-rate", type=number(float, 0, MAX_USER_RATE), default=1.0,
                        help="rpc and rest: requests per second per user (default 1; 0: closed loop)")
    parser.add_argument("--typing-rate", type=number(float, 0, MAX_USER_RATE, above=True), default=1.0,
                        help="presence: typing indicators per second per user (default 1)")
    parser.add_argument("--room-size", type=number(int, 0, MAX_ROOM_SIZE), default=10,
                        help="presence: users per room (default 10; 0: one room)")
    parser.add_argument("--server-args", type=_server_args, default=[], metavar="ARGS",
                        help="extra options for the server rtcap starts, one quoted string: "
                             "--server-args '--cache-ttl 5 --state-bytes 8192' (see rtcap target serve --help)")
    parser.add_argument("--channel", default="", help="channel to subscribe to (default: the adapter's, live)")
    parser.add_argument("--host", type=http_url, help="measure an already running server at this base URL instead of starting one")
    parser.add_argument("--target-pid", type=number(int, 1, MAX_PID), help="with --host: pid of the server process to sample")
    parser.add_argument("--slo-p99-ms", type=number(float, 0, MAX_MS, above=True), default=1000.0,
                        help="delivery p99 that counts as meeting the SLO (default 1000 ms)")
    parser.add_argument("--slo-error-rate", type=number(float, 0, 1), default=0.01,
                        help="error rate (a fraction from 0 to 1) that counts as meeting the SLO (default 0.01)")
    parser.add_argument("--max-message-bytes", type=number(int, 1024, 1 << 30), default=limits.WS_MESSAGE_BYTES,
                        metavar="BYTES", help="largest SSE event or WebSocket message a client accepts (default 1 MiB); "
                                              "a larger one is an error against the target and closes the connection")
    parser.add_argument("--max-body-bytes", type=number(int, 1024, 1 << 34), default=limits.HTTP_BODY_BYTES,
                        metavar="BYTES", help="largest HTTP response body a poll or fetch accepts (default 8 MiB)")
    parser.add_argument("--head-timeout", type=number(float, 0, 3600, above=True), default=limits.HEAD_TIMEOUT_S,
                        metavar="S", help="seconds a poll, fetch or connection may wait for its response head (default 30)")
    parser.add_argument("--slo-poll-slack", type=number(float, 0, MAX_MS), default=250.0, metavar="MS",
                        help="polled transports (poll, state) are held to staleness p99 <= poll interval + this "
                             "(default 250 ms): a poll's staleness is spread over its interval, whatever the server")
    parser.add_argument("--generator-lag-limit-ms", type=number(float, 0, MAX_MS, above=True), default=100.0,
                        help="a step whose load generator woke timers later than this (p99) is not counted (default 100)")
    parser.add_argument("--processes", type=number(int, 1, MAX_PROCESSES), default=1,
                        help="load-generating processes; above 1, Locust runs a master plus this many workers (default 1)")
    parser.add_argument("--threshold", action="append", metavar="EXPR",
                        help="pass/fail gate, repeatable: 'sse.delivery.p99<250ms', 'ws.errors<0.1%%', "
                             "'sse.mem_per_conn<32KiB', 'poll.rps>=500' (also RTCAP_THRESHOLDS, rtcap.toml, "
                             "[tool.rtcap] in pyproject.toml); exit 1 when one is not met")
    parser.add_argument("--abort-early", action="store_true",
                        help="stop the sweep as soon as a threshold can no longer be met (a finished step's latency "
                             "or error rate, or a count such as lost, over its upper bound); what was measured is kept")
    parser.add_argument("--name", type=run_name,
                        help="run name: one directory under --out-dir, no '/' or leading '.' (default: run-YYYYmmdd-HHMMSS)")
    parser.add_argument("--out-dir", type=Path, default=Path("runs"), help="where run directories go (default ./runs)")
    parser.add_argument("--no-report", action="store_true", help="write the run directory only")


def run_command(args: argparse.Namespace) -> int:
    """`rtcap run`."""
    from rtcap.loadtests.run.sweep import RunError, RunOptions, run_sweep

    from rtcap.reports.gate import gather
    from rtcap.reports.thresholds import ThresholdError

    try:
        thresholds = gather(args.threshold)  # before any load: a typo must not cost a run
    except ThresholdError as error:
        print(f"rtcap run: error: {error}", file=sys.stderr)
        return 2
    if args.abort_early and not thresholds:
        print("rtcap run: error: --abort-early needs at least one threshold (--threshold, RTCAP_THRESHOLDS, rtcap.toml)",
              file=sys.stderr)
        return 2
    preset = QUICK if args.quick else DEFAULT
    from rtcap.loadtests.generator.staircase import parse_steps

    hold = args.hold if args.hold is not None else preset["hold"]
    settle = args.settle if args.settle is not None else min(preset["settle"], hold / 3)
    if not 0 <= settle < hold:
        print(f"rtcap run: error: --settle {settle:g} must be at least 0 and below --hold {hold:g}", file=sys.stderr)
        return 2
    if args.settle_max and args.settle_max < settle:
        print(f"rtcap run: error: --settle-max {args.settle_max:g} must be 0 or at least --settle {settle:g}", file=sys.stderr)
        return 2
    if args.server_args and args.host:
        print("rtcap run: error: --server-args is for a server rtcap starts, not one at --host", file=sys.stderr)
        return 2
    if args.target_pid and not args.host:
        print("rtcap run: error: --target-pid goes with --host", file=sys.stderr)
        return 2
    options = RunOptions(
        name=args.name or datetime.now().strftime("run-%Y%m%d-%H%M%S"), out_dir=args.out_dir,
        transports=args.transports or list(registry.RUN_DEFAULT), steps=args.steps or parse_steps(preset["steps"]), hold=hold,
        settle=settle,
        settle_max=args.settle_max,
        spawn_rate=args.spawn_rate, target=args.target, rate=args.rate, payload=args.payload, host=args.host,
        target_pid=args.target_pid, channel=args.channel, poll_interval=args.poll_interval, chat_rate=args.chat_rate,
        slo_p99_ms=args.slo_p99_ms, slo_error_rate=args.slo_error_rate, slo_poll_slack_ms=args.slo_poll_slack,
        max_message_bytes=args.max_message_bytes, max_body_bytes=args.max_body_bytes, head_timeout=args.head_timeout,
        report=not args.no_report,
        processes=args.processes, generator_lag_limit_ms=args.generator_lag_limit_ms,
        thresholds=[t.text for t in thresholds], abort_early=args.abort_early,
        conditional_get=not args.no_conditional_get, request_rate=args.request_rate, typing_rate=args.typing_rate,
        room_size=args.room_size, server_args=args.server_args,
    )
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
            return 3
        failed = 3  # the target died: what was measured is written and judged, and the run still failed
    print(f"run directory: {run_dir}")
    if options.report:
        print(f"report: {run_dir / 'report.html'}")
    code = 0
    if thresholds:
        import json

        from rtcap.reports.gate import check_run, early_verdicts

        aborted = json.loads((run_dir / "meta.json").read_text(encoding="utf-8")).get("aborted")
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

    if args.transports or args.threshold or args.abort_early:
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
    print(f"summary: {root / 'summary.md'}")
    if options.report:  # type: ignore[attr-defined]
        print(f"report: {root / 'report.html'}")
    return 0


def check_command(args: argparse.Namespace) -> int:
    """`rtcap check-target`: 0 when every declared transport and the process check pass, 1 otherwise."""
    from rtcap.loadtests.transports.check import check_process, check_transport, format_table
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
    check.add_argument("--transports", type=_transports,
                       help="comma list of transports to check (default: all the adapter declares)")
    check.add_argument("--host", type=http_url, help="check a server already running at this base URL (instead of starting one)")
    check.add_argument("--timeout", type=number(float, 0, MAX_INTERVAL_S, above=True), default=10.0,
                       help="seconds to wait for events (default 10)")
    target = commands.add_parser("target", help="the bundled reference target")
    target.add_argument("action", choices=["serve"], help="serve: run the reference server (see `rtcap target serve --help`)")
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
    return 2


if __name__ == "__main__":
    sys.exit(main())
