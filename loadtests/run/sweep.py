"""`rtcap run`: per transport, a fresh target, a check, a step-load Locust run and samples; then files and report.

The orchestrating process never imports Locust: Locust runs in its own process (`python -m locust`), which is
also the load generator whose CPU is sampled, so its saturation can be detected and flagged.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rtcap.loadtests import options as declared
from rtcap.loadtests.run import collect, interrupt, oslimits
from rtcap.loadtests.run.interrupt import Interrupted
from rtcap.loadtests.run.liveness import HealthProber
from rtcap.loadtests.run.check import check_transport
from rtcap.loadtests.run.observe import ObserveError, describe, probe_for
from rtcap.loadtests.run.publisher import Publisher
from rtcap.loadtests.run.process_probe import ProcessProbe
from rtcap.loadtests.run.sampler import Sampler, sample_rows
from rtcap.loadtests.generator.settle import SettleRule
from rtcap.loadtests.generator.staircase import Staircase
from rtcap.loadtests.generator.timeline import read_timeline
from rtcap.reports import schema
from rtcap.reports import slo as slo_rule
from rtcap.targets.adapter import AdapterError, TargetAdapter, load_adapter, reference_adapter_path
from rtcap.targets.launch import LaunchError, free_port, launch
from rtcap.targets.transports import UnknownTransport, checked, lookup

GENERATOR_DIR = Path(__file__).resolve().parents[1] / "generator"
WORKER_WAIT_S = 300.0
"""How long a master started with --expect-workers waits for its workers to connect."""
LOCUST_STOP_GRACE_S = 20.0
"""How long Locust may take to stop cleanly (write its last rows) when rtcap stops it early."""


class RunError(RuntimeError):
    """The run could not be carried out (target unreachable, Locust failed...)."""


class TargetDied(RunError):
    """The target's process ended during the run: what was measured before is kept, the run failed."""


class WorkerLost(RunError):
    """A Locust worker disappeared and --on-worker-loss stop ended the run: what was measured is kept."""


class StepsMissing(RunError):
    """Locust ended before every planned step was measured, with no target death, worker loss, interruption
    or early abort to explain it: the steps it measured are kept, the run failed."""


class LimitRefused(RunError):
    """The target rtcap started cannot hold the largest step (its own open-file limit): refused before load."""

    exit_code = 2


RunOptions = declared.run_options_class()
"""Everything `rtcap run` was asked to do: its name, then one field per option loadtests/options.py declares
for the orchestrating process, with the declared default."""


def _git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=GENERATOR_DIR, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _target_meta(options: RunOptions, adapter: TargetAdapter) -> dict[str, Any]:
    reference = adapter.source is not None and Path(adapter.source).resolve() == reference_adapter_path().resolve()
    kind = "external" if options.host and reference else "reference" if reference else "adapter"
    return {
        "kind": kind, "name": adapter.name, "adapter": str(adapter.source) if adapter.source else None,
        # A started server gets a fresh loopback port per transport: the URLs are in target.checks.
        "url": options.host or ("started per transport on a free loopback port" if "{port}" in adapter.base_url
                                else adapter.base_url),
        "publish": adapter.publish.mode,
        "rate": _rate(options, adapter), "payload": _payload(options, adapter),
        "observed": "pid " + str(options.target_pid) if options.host and options.target_pid else describe(adapter),
        "pid": options.target_pid,
    }


def availability_notes(options: RunOptions, adapter: TargetAdapter) -> list[str]:
    """Figures this run cannot measure for this target, and why (shown in meta.json and the report)."""
    notes = []
    if adapter.publish.mode == "none":
        notes.append("delivery latency unavailable: nothing publishes events (publish.mode = none); throughput only")
    for name, spec in adapter.transports.items():
        if name in options.transports and not spec.message.ts:
            notes.append(f"{name}: delivery latency unavailable: its messages carry no publish time (ts = \"\")")
    if options.host and adapter.process.kind == "started" and not options.target_pid:
        notes.append("memory per connection unavailable: --host without --target-pid, so no server process is sampled")
    elif adapter.process.kind == "none" and not options.target_pid:
        notes.append("memory per connection unavailable: the adapter observes no process (process.none)")
    return notes


def _meta(options: RunOptions, adapter: TargetAdapter, started: str, ended: str | None, notes: list[str],
          checks: dict[str, Any] | None = None) -> dict[str, Any]:
    return schema.build_meta(
        name=options.name, git_sha=_git_sha(), target={**_target_meta(options, adapter), "checks": checks or {}},
        transports=options.transports, steps=options.steps, hold_s=options.hold,
        settle={"min_s": options.settle, "max_s": options.settle_max or None,
                "criterion": SettleRule().describe() if options.settle_max else "fixed"},
        options=asdict(options),
        slo={"delivery_p99_ms": options.slo_p99_ms, "error_rate": options.slo_error_rate,
             "poll_slack_ms": options.slo_poll_slack_ms,
             slo_rule.BY_TRANSPORT: slo_rule.limits(options.slo_p99_ms, options.poll_interval,
                                                    options.slo_poll_slack_ms, options.transports),
             "generator_cpu_percent": options.generator_cpu_limit,
             "generator_lag_p99_ms": options.generator_lag_limit_ms},
        start=started, end=ended, notes=notes)


def load_target(options: RunOptions) -> TargetAdapter:
    """The adapter for this run (the reference target's by default), checked against the transports asked for."""
    try:
        checked(options.transports)
    except UnknownTransport as error:
        raise RunError(str(error)) from None
    try:
        adapter = load_adapter(options.target or reference_adapter_path())
    except (AdapterError, OSError) as error:
        raise RunError(str(error)) from error
    missing = [t for t in options.transports if t not in adapter.transports]
    if missing:
        raise RunError(f"target {adapter.name!r} ({adapter.source}) has no {', '.join(missing)} transport; "
                       f"it declares {', '.join(adapter.transports)}")
    if not options.host and adapter.process.start is None and "{port}" in adapter.base_url:
        raise RunError(f"{adapter.source}: base_url has {{port}} but no process.start; give --host")
    return adapter


def locust_command(options: RunOptions, transport: str, adapter: TargetAdapter, record_dir: Path,
                   settle_samples: Path | None = None) -> list[str]:
    """The `python -m locust` command line that runs one transport's staircase (with the target's live
    memory samples in `settle_samples`, each step waits for them to settle). Every option the generator
    shares with `rtcap run` is passed, defaults too (loadtests/options.py)."""
    files = f"{GENERATOR_DIR / 'catalog.py'},{GENERATOR_DIR / 'stepload.py'}"
    # Without the target's memory samples there is nothing to wait on: fixed settle.
    values = {**asdict(options), "settle_max": options.settle_max if settle_samples is not None else 0.0}
    command = [
        sys.executable, "-m", "locust", "-f", files, "--headless", "--host", adapter.base_url,
        "--target", str(adapter.source or reference_adapter_path()),
        "--csv", str(record_dir / "locust"), "--only-summary", "--loglevel", "WARNING",
        "--rtcap-record", str(record_dir), *declared.generator_argv(values),
    ]
    if settle_samples is not None and options.settle_max:
        command += ["--step-settle-samples", str(settle_samples)]
    if options.abort_early and options.thresholds:
        # Locust watches them step by step and stops the staircase once one can no longer be met.
        command += ["--abort-early"] + [arg for text in options.thresholds for arg in ("--threshold", text)]
    if options.expect_workers:
        # Only the master runs here; it waits (bounded) for the workers `rtcap worker` starts, here or elsewhere.
        command += ["--master", "--expect-workers", str(options.expect_workers),
                    "--expect-workers-max-wait", f"{WORKER_WAIT_S:g}", "--master-bind-host", options.master_bind_host,
                    "--master-bind-port", str(options.master_bind_port)]
    elif options.processes > 1:
        # Locust forks a master and N workers; the master listens on loopback only, on a free port.
        port = str(free_port())
        command += ["--processes", str(options.processes), "--master-bind-host", "127.0.0.1",
                    "--master-bind-port", port, "--master-host", "127.0.0.1", "--master-port", port]
    return command + [lookup(transport).user_class]


@contextmanager
def live_target(options: RunOptions, adapter: TargetAdapter, record_dir: Path) -> Iterator[tuple[TargetAdapter, int | None]]:
    """The server to measure: --host as given, else a fresh one from the adapter's start command, else as declared."""
    if options.host:
        yield adapter.with_base_url(options.host), options.target_pid
        return
    if adapter.process.start is None:
        yield adapter, None
        return
    if options.server_args:
        # Extra options for the server rtcap starts (e.g. the reference target's --cache-ttl 5).
        adapter = replace(adapter, process=replace(adapter.process, start=[*adapter.process.start, *options.server_args]))
    try:
        launched = launch(adapter, _rate(options, adapter), _payload(options, adapter), record_dir / schema.TARGET_LOG_FILE)
    except LaunchError as error:
        raise RunError(str(error)) from error
    interrupt.register(launched.pid)  # its session is killed at once on a second signal
    try:
        yield launched.adapter, launched.pid
    finally:
        launched.stop()
        interrupt.unregister(launched.pid)


def _rate(options: RunOptions, adapter: TargetAdapter) -> float:
    return options.rate if options.rate is not None else adapter.publish.rate


def _payload(options: RunOptions, adapter: TargetAdapter) -> int:
    return options.payload if options.payload is not None else adapter.publish.payload


def _target_probe(options: RunOptions, adapter: TargetAdapter, pid: int | None) -> Any | None:
    if options.host and options.target_pid:
        return ProcessProbe(options.target_pid, "target", include_children=True)
    if options.host and adapter.process.kind == "started":
        return None  # the adapter would start its own server, but --host points at one rtcap did not start
    try:
        return probe_for(adapter, pid)
    except ObserveError as error:
        raise RunError(f"cannot observe the target process: {error}") from error


def run_transport(options: RunOptions, adapter: TargetAdapter, transport: str, run_dir: Path, clock0: float,
                  say: Any, checks: dict[str, Any] | None = None) -> tuple[list[dict], list[dict]]:
    """Measure one transport; return its step rows and its samples (the pre-load check goes into `checks`).

    Raises TargetDied (after collecting what was measured, available as the exception's `rows` and
    `samples`) when the target's process ended during the run.
    """
    record_dir = run_dir / "locust" / transport
    record_dir.mkdir(parents=True, exist_ok=True)
    with live_target(options, adapter, record_dir) as (live, pid):
        # A slow publisher needs time for the check's 3 events: wait for 4 of its intervals, at least 10 s.
        check = check_transport(live, transport, timeout=max(10.0, 4.0 / _rate(options, live) + 1.0))
        if checks is not None:
            checks[transport] = {"url": live.base_url, "ok": check.ok, "why": check.why, "connect_ms": check.connect_ms,
                                 "first_answer_ms": check.first_answer_ms, "events": check.events,
                                 "receive_minus_ts_ms": check.offset_ms}
        if not check.ok:
            raise RunError(f"[{transport}] target check failed: {check.why}")
        if pid is not None and not options.host:
            try:  # its start command may have lowered the limit it inherited from rtcap
                oslimits.check_target_open_files(pid, options.steps, options.transports)
            except oslimits.LimitRefused as error:
                raise LimitRefused(f"[{transport}] {error}") from None
        say(f"[{transport}] target {live.base_url} checked (connect {check.connect_ms:.1f} ms); "
            f"running steps {options.steps} ({options.hold:g} s each)")
        if options.expect_workers:
            host = options.master_bind_host if options.master_bind_host not in ("0.0.0.0", "::") else "THIS-HOST"
            where = f"{host}:{options.master_bind_port}"
            say(f"[{transport}] waiting up to {WORKER_WAIT_S:g} s for {options.expect_workers} worker(s) at {where} "
                f"(on each load machine: rtcap worker --master {where})")
        staircase = Staircase(options.steps, options.hold, options.settle, options.spawn_rate, options.ramp_timeout)
        limit = (staircase.planned_seconds() + min(options.ramp_timeout * len(options.steps), 120) + 60
                 + max(0.0, options.settle_max - options.settle) * len(options.steps)
                 + (WORKER_WAIT_S if options.expect_workers else 0.0))
        target_probe = _target_probe(options, live, pid)
        evidence = collect.Evidence(self_publish_rate=_rate(options, live) if live.publish.mode == "self" else None,
                                    error_rate_limit=options.slo_error_rate, sampled=target_probe is not None)
        publisher = health = None
        if live.publish.mode == "http":
            publisher = Publisher(live.publish, options.channel or live.channel, _rate(options, live), limit,
                                  record=record_dir / schema.PUBLISHES_FILE).start()
        if live.process.ready_url:
            # Alive is not serving: a frozen process keeps its pid, only an answer proves it serves.
            health = HealthProber(f"{live.base_url}{live.process.ready_url}", record_dir / schema.HEALTH_FILE).start()
        try:
            with (record_dir / "locust.log").open("w", encoding="utf-8") as log:
                # The step shape reads the target's samples as they are taken to decide when memory settled.
                live_samples = record_dir / schema.TARGET_LIVE_FILE if target_probe is not None else None
                command = locust_command(options, transport, live, record_dir, live_samples)
                # Thresholds are checked on the whole run directory afterwards; inside Locust only to abort early.
                gate = "abort" if options.abort_early and options.thresholds else "off"
                # Its own session: a terminal's Ctrl-C reaches rtcap, which stops Locust and its workers itself.
                locust = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                          env={**os.environ, "RTCAP_GATE": gate})
                interrupt.register(locust.pid)
                # One sample per generator process (master and forked workers): saturation is per process.
                probes = [ProcessProbe(locust.pid, "generator", count_connections=False, include_children=True,
                                       per_process=True)]
                if target_probe is not None:
                    probes.insert(0, target_probe)
                sampler = Sampler(probes, options.sample_interval, live_path=live_samples).start()
                stopped: Interrupted | None = None
                try:
                    code = _watch(locust, sampler, limit, transport, record_dir, evidence, options, say)
                except Interrupted as signal_:
                    say(f"[{transport}] {signal_}: stopping the load and writing what was measured")
                    stopped, code = signal_, _stop_locust(locust)
                finally:
                    if locust.poll() is None:
                        _stop_locust(locust)
                    samples = sampler.stop()
        finally:
            if publisher is not None:
                publisher.stop()
            if health is not None:
                health.stop()
        gone_at = sampler.gone.get("target")
        rows = collect.collect_transport(transport, record_dir, [])
        if gone_at is None and stopped is None and (code not in (0, 1) or (not rows and _aborted(record_dir) is None)):
            if options.expect_workers and "Gave up waiting for workers" in (record_dir / "locust.log").read_text():
                raise RunError(f"[{transport}] fewer than {options.expect_workers} worker(s) connected to "
                               f"{options.master_bind_host}:{options.master_bind_port} within {WORKER_WAIT_S:g} s")
            if not collect.worker_losses(collect.read_seconds(record_dir)):
                # Locust exits 1 when any request failed; that is a measurement. Anything else is a crash.
                raise RunError(f"[{transport}] Locust exited {code} after {len(rows)} step(s); see "
                               f"{record_dir / 'locust.log'}")
    sampled = [{**row, "transport": transport, "elapsed_s": row["t"] - clock0} for row in sample_rows(samples)]
    evidence = replace(evidence, gone_at=gone_at)
    rows = collect.collect_transport(transport, record_dir, sampled, options.generator_cpu_limit,
                                     options.generator_lag_limit_ms, evidence, planned=options.steps)
    labelled = collect.label_samples(sampled, rows)
    if stopped is not None:
        stopped.rows, stopped.samples = rows, labelled
        raise stopped
    lost = collect.worker_losses(collect.read_seconds(record_dir))
    if lost and options.on_worker_loss == "stop" and gone_at is None:
        names = ", ".join(f"{loss['worker']} ({loss['users']} users)" for loss in lost)
        failed = WorkerLost(f"[{transport}] worker(s) lost: {names}; the run stopped (--on-worker-loss stop), the "
                            "steps before kept")
        failed.rows, failed.samples = rows, labelled  # type: ignore[attr-defined]
        raise failed
    if gone_at is None and not lost and len(rows) < len(options.steps) and _aborted(record_dir) is None:
        missing = ", ".join(f"{users:,}" for users in options.steps[len(rows):])
        short = StepsMissing(f"[{transport}] Locust ended (exit {code}) after {len(rows)} of {len(options.steps)} "
                             f"step(s); not measured: {missing} users; see {record_dir / 'locust.log'}")
        short.rows, short.samples = rows, labelled  # type: ignore[attr-defined]
        raise short
    if gone_at is not None:
        down = [str(row["step"]) for row in rows if "target_down" in row["flags"].split(";")]
        died = TargetDied(f"[{transport}] the target process ended {gone_at - clock0:.1f} s into the run "
                          f"({sampler.errors[0] if sampler.errors else 'gone'}); step(s) {', '.join(down) or 'none'} "
                          "marked target_down, the steps before kept")
        died.rows, died.samples = rows, labelled  # type: ignore[attr-defined]
        raise died
    return rows, labelled


def _watch(locust: subprocess.Popen, sampler: Sampler, limit: float, transport: str, record_dir: Path,
           evidence: collect.Evidence, options: RunOptions, say: Any) -> int:
    """Wait for Locust, printing one line per finished step; stop it early when the target's process is gone."""
    deadline = time.monotonic() + limit
    shown = 0
    while True:
        try:
            code = locust.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass
        else:
            _progress(transport, record_dir, sampler, evidence, options, shown, say)  # the last step's line
            return code
        shown = _progress(transport, record_dir, sampler, evidence, options, shown, say)
        if "target" in sampler.gone:
            # Nothing more can be measured: let Locust write what it has, then report the death.
            say(f"[{transport}] the target process is gone ({sampler.errors[0] if sampler.errors else 'exited'}); "
                "stopping the load")
            return _stop_locust(locust)
        if time.monotonic() > deadline:
            _stop_locust(locust)
            raise RunError(f"[{transport}] Locust did not finish within {limit:.0f} s; see {record_dir / 'locust.log'}")


def _stop_locust(locust: subprocess.Popen) -> int:
    """Ask Locust to stop, kill its whole process group after LOCUST_STOP_GRACE_S.

    SIGINT, not SIGTERM: a headless Locust runs its step shape before it installs its SIGTERM handler, so
    SIGTERM kills it outright, while SIGINT ends the shape and quits cleanly (as master it first collects
    its workers' last rows, then stops them)."""
    try:
        if locust.poll() is None:
            locust.send_signal(signal.SIGINT)
            try:
                return locust.wait(timeout=LOCUST_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
        return locust.wait()
    finally:
        _signal_group(locust.pid, signal.SIGKILL)  # workers the master left behind, if any
        interrupt.unregister(locust.pid)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _progress(transport: str, record_dir: Path, sampler: Sampler, evidence: collect.Evidence, options: RunOptions,
              shown: int, say: Any) -> int:
    """Say one line for each step finished since `shown` steps were shown; return how many are shown now."""
    windows = collect.read_jsonl(record_dir / schema.WINDOWS_FILE)
    if len(windows) <= shown:
        return shown
    # A Locust master writes a second once its workers' reports of it are in (recorder.MASTER_HOLD_SECONDS):
    # a step is shown once the timeline reaches its end, never from half its data.
    written = [row["t"] for path in record_dir.glob(schema.TIMELINE_GLOB) for row in read_timeline(path)]
    if not written:
        return shown
    sampled = [{**row, "transport": transport} for row in sample_rows(list(sampler.samples))]
    for row in collect.collect_transport(transport, record_dir, sampled, options.generator_cpu_limit,
                                         options.generator_lag_limit_ms, evidence)[shown:]:
        if row["t_end"] > max(written) + 1:
            break
        say(f"[{transport}] step {row['step']}: " + step_line(row))
        shown += 1
    return shown


def step_line(row: dict[str, Any]) -> str:
    """One step in a line: connections, throughput, p99, errors, target RSS, and whether it counts."""
    def num(value: Any, unit: str = "", digits: int = 0) -> str:
        return "-" if value is None else f"{value:,.{digits}f}{unit}"

    rss = row.get("rss_bytes")
    verdict = "valid" if row["valid"] else "INVALID: " + row["flags"].replace(";", ", ")
    return (f"{row['users']} users, {num(row['connections'])} connections, {num(row['msgs_per_s'], ' msgs/s', 1)}, "
            f"{num(row['rps'], ' req/s', 1)}, p99 {num(row['latency_p99_ms'], ' ms', 1)}, errors {row['errors']}, "
            f"target RSS {num(rss / 2**20 if rss else None, ' MiB', 1)}; {verdict}")


def _aborted(record_dir: Path) -> dict[str, Any] | None:
    """What an aborted Locust run wrote into its record directory (None when it ran to the end)."""
    from rtcap.reports.schema import ABORTED_FILE

    path = record_dir / ABORTED_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def run_sweep(options: RunOptions, say: Any = print) -> Path:
    """Run every transport in turn and write the run directory (and the HTML report); return its path.

    Raises RunError when the run failed (TargetDied after writing what was measured) and Interrupted on
    SIGINT/SIGTERM, after stopping what it started and writing what was measured (loadtests/run/interrupt.py).
    """
    with interrupt.handled():
        return _sweep(options, say)


def _sweep(options: RunOptions, say: Any) -> Path:
    adapter = load_target(options)
    run_dir = options.out_dir / options.name
    if run_dir.exists() and any(run_dir.iterdir()):
        raise RunError(f"run directory {run_dir} already exists and is not empty; choose another --name")
    run_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc).isoformat()
    notes = availability_notes(options, adapter)
    for note in notes:
        say(f"note: {note}")
    schema.write_meta(run_dir, _meta(options, adapter, started, None, notes))
    all_rows: list[dict] = []
    all_samples: list[dict] = []
    checks: dict[str, Any] = {}
    aborted: dict[str, Any] | None = None
    clock0 = time.time()
    failure: RunError | None = None
    interrupted: Interrupted | None = None
    try:
        for transport in options.transports:
            try:
                rows, samples = run_transport(options, adapter, transport, run_dir, clock0, say, checks)
            except (TargetDied, WorkerLost, StepsMissing) as died:
                rows, samples, failure = died.rows, died.samples, died  # type: ignore[attr-defined]
            offset = checks.get(transport, {}).get("receive_minus_ts_ms")
            started_here = not options.host and adapter.process.start is not None
            if adapter.publish.mode == "self" and offset is not None and not started_here:
                # A server rtcap did not start may run on another clock: say how far apart the clocks can be.
                notes.append(f"{transport}: delivery latency is measured from the server's own timestamps; at the "
                             f"pre-load check receive - ts was {offset:.1f} ms, which bounds any clock offset")
            busy = [row["users"] for row in rows if not row["valid"] and
                    {"generator_saturated", "generator_lagging"} & set(row["flags"].split(";"))]
            for note in collect.worker_notes(transport, run_dir / "locust" / transport, rows,
                                             options.generator_cpu_limit, options.generator_lag_limit_ms):
                notes.append(note)
                say(f"note: {note}")
            if busy and options.expect_workers:
                notes.append(f"{transport}: the load generator could not keep up at {', '.join(map(str, busy))} users "
                             f"(steps not counted); rerun with more than {options.expect_workers} workers")
                say(f"note: {notes[-1]}")
            elif busy:
                # The generator, not the target, limited these steps: say how to get them measured.
                notes.append(f"{transport}: the load generator could not keep up at {', '.join(map(str, busy))} users "
                             f"(steps not counted); rerun with --processes {max(2, options.processes * 2)}")
                say(f"note: {notes[-1]}")
            for note in invalid_step_notes(transport, rows):
                notes.append(note)
                say(f"note: {note}")
            all_rows += rows
            all_samples += samples
            # Written after every transport, so an interrupted sweep keeps what it measured.
            schema.write_steps(run_dir, all_rows)
            schema.write_samples(run_dir, all_samples)
            say(f"[{transport}] {len(rows)} step(s) measured")
            if failure is not None:
                rest = options.transports[options.transports.index(transport) + 1:]
                notes.append(f"run failed: {failure}" + (f"; transports not run: {', '.join(rest)}" if rest else ""))
                break
            abort = _aborted(run_dir / "locust" / transport)
            if abort is not None:
                aborted = {"transport": transport, **abort}
                missed = ", ".join(item["threshold"] for item in abort["thresholds"])
                notes.append(f"aborted early during {transport}: {missed} can no longer be met; "
                             f"transports not run: {', '.join(options.transports[options.transports.index(transport) + 1:]) or 'none'}")
                say(f"note: {notes[-1]}")
                break
    except RunError as error:
        notes.append(f"run stopped: {error}")
        raise
    except Interrupted as stop:
        # Keep what the transport in progress measured, then write everything as after any run.
        all_rows += stop.rows
        all_samples += stop.samples
        schema.write_steps(run_dir, all_rows)
        schema.write_samples(run_dir, all_samples)
        notes.append(f"interrupted by {stop.name}: {len(all_rows)} finished step(s) kept; the step in progress "
                     "and the transports after it were not measured")
        interrupted = stop
    finally:
        ended = datetime.now(timezone.utc).isoformat()
        meta = _meta(options, adapter, started, ended, notes, checks)
        if aborted is not None:
            meta["aborted"] = aborted
        if failure is not None:
            meta["failed"] = str(failure)
        if interrupted is not None:
            meta["interrupted"] = interrupted.name
        schema.write_meta(run_dir, meta)
    from rtcap.reports.summary import write_summary

    write_summary(run_dir)
    if options.report:
        from rtcap.reports.html import render_report

        render_report([run_dir], run_dir / schema.REPORT_FILE)
    if failure is not None:
        failure.run_dir = run_dir  # type: ignore[attr-defined]
        raise failure
    if interrupted is not None:
        raise interrupted
    return run_dir


def invalid_step_notes(transport: str, rows: list[dict[str, Any]]) -> list[str]:
    """One note per reason that made steps invalid other than the generator's speed (said apart), with the
    steps it hit and what was seen: a failed publish's answer, the exceptions raised in users."""
    from rtcap.reports.flags import GENERATOR_LAGGING, GENERATOR_SATURATED, words

    hit: dict[str, list[int]] = {}
    for row in rows:
        for flag in filter(None, row["flags"].split(";")):
            if not row["valid"] and flag not in (GENERATOR_SATURATED, GENERATOR_LAGGING):
                hit.setdefault(flag, []).append(row["users"])
    notes = []
    for flag, users in hit.items():
        detail = ""
        if flag == "publish_failed":
            first = next(r for r in rows if r.get("publish_errors"))
            detail = f": {first['publish_errors']} of {first['published']} publishes failed, e.g. {first['publish_error']}"
        elif flag == "generator_exception":
            detail = ": " + "; ".join(sorted({r["exception_names"] for r in rows if r.get("exception_names")}))
        notes.append(f"{transport}: {words(flag)} at {', '.join(map(str, users))} users (steps invalid){detail}")
    return notes
