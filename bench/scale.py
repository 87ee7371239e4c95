"""How many held connections one box reaches: the largest SSE sweep against nginx+nchan and the reference target.

    python -m rtcap.bench.scale            # about 15 minutes on 2 cores: up to 75,000 connections per target
    python -m rtcap.bench.scale --quick    # about 2 minutes: up to 3,000
    python -m rtcap.bench.scale --arms one-process --out-dir DIR   # one arm; keep its run directory

Measured on the 2-core box rtcap is developed on: README.md, "Several machines".

Every arm is one `rtcap run --host URL` sweep of held SSE connections that each receive 0.05 events/s (one
event every 20 s on the channel they all subscribe to, published by rtcap), opened from the loopback source
addresses 127.0.0.2-127.0.0.9 (~28k ports each towards one destination) by `--processes` generator processes:

- **nchan**: nginx+nchan with targets/examples/nchan's configuration, but several nginx workers on a
  `reuseport` listener (the example runs one);
- **reference**: the reference target with several uvicorn workers and a redis broker (`--workers N --broker
  redis`);
- **one process**: nchan again, from a single generator process: what one process holds.

Why several processes on both sides: a process holds at most RLIMIT_NOFILE descriptors, one per connection.
As root the bench first tries to raise the hard limit to /proc/sys/fs/nr_open for itself and every process it
starts (it says whether it could: a container without CAP_SYS_RESOURCE cannot), then sizes the generator
processes and the targets' workers so that none needs more than the limit allows. rtcap starts no target
here: a target rtcap starts is checked as one process holding every connection, so the bench starts it
(targets/launch.py) and samples its whole process tree through `rtcap agent --pid` (adapter `agent_url`).

Per arm it prints each step (connections held, valid or the flags that voided it, the busiest generator
process's CPU and timer lag, delivery p99, target and generator memory), then the generator's and the target's
memory per connection (least-squares slopes over every step that held connections, valid or not, of the RSS
the bench samples itself each second over both process trees: it reads memory only, so it keeps up where
rtcap's sampler, which also counts every process's sockets, may not; the kernel's TCP memory apart, both ends
of every connection being on this box), the busiest generator process's CPU per 1,000 connections, the CPU
`rtcap agent` spent sampling the target, and where the sweep stopped: the first invalid step's reason (CPU,
lag, fds or ports, connections short...) or the steps it never reached, else the limit that comes next and how
far off it is (open files, ports, memory, a generator process's CPU extrapolated to 90%).
`--out-dir DIR` keeps the run directories and writes scale.json there.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil

from rtcap.bench.truth import ROOT
from rtcap.loadtests.run.oslimits import FD_MARGIN, PORT_MARGIN, read_host_limits
from rtcap.reports import flags as F
from rtcap.reports.model import FitError, fit_line
from rtcap.targets.adapter import adapter_from_dict
from rtcap.targets.launch import LaunchedTarget, launch

SOURCE_IPS = "127.0.0.2-127.0.0.9"
SOURCES = 8
FD_USE = 0.85
"""Share of a process's open-file limit a sweep plans to fill: the kernel's reuseport hash does not split a
target's connections exactly evenly over its workers, and each process has descriptors besides connections."""
CPU_LIMIT = 90.0
"""A generator process above this percentage of a core voids a step (rtcap run's rule)."""
STOPPED_BY = {
    F.GENERATOR_SATURATED: "CPU: a generator process above 90% of a core",
    F.GENERATOR_LAGGING: "lag: a generator process's timers late beyond --generator-lag-limit-ms",
    F.GENERATOR_LIMIT: "fds or ports: the generator ran out of descriptors or source ports",
    F.USERS_NOT_REACHED: "ramp: the generator could not start every user in time",
    F.CONNECTIONS_SHORT: "the target held fewer connections than users (refused or dropped)",
    F.ERRORS_OVER_SLO: "errors above the SLO",
    F.TARGET_UNRESPONSIVE: "the target stopped answering its health URL",
    F.TARGET_DOWN: "the target died",
    F.NO_DELIVERIES: "no event reached any connection",
    F.TARGET_UNSAMPLED: "the target's sampler (rtcap agent) did not answer within its timeout",
    F.WORKER_LOST: "a generator process missed its heartbeats (CPU starvation) and was taken for lost",
}
"""The step flags that say where a sweep stopped, in the order they are named."""


@dataclass(frozen=True)
class Arm:
    """One sweep: which server, with how many workers, from how many generator processes."""

    name: str
    server: str
    """"nchan" or "reference"."""
    steps: tuple[int, ...]
    processes: int = 0
    """Generator processes; 0: as many as the open-file limit needs for the largest step."""
    workers: int = 0
    """The server's worker processes; 0: as many as the open-file limit needs."""


@dataclass(frozen=True)
class Plan:
    arms: tuple[Arm, ...]
    hold: float = 30.0
    """Seconds per step: with one event per 20 s every window of hold - settle holds at least one."""
    settle: float = 2.0
    settle_max: float = 10.0
    rate: float = 0.05
    spawn_rate: float = 400.0
    """Users started per second over all generator processes (Locust warns above 100 per worker)."""
    ramp_timeout: float = 180.0


FULL_STEPS = (15_000, 30_000, 45_000, 60_000, 75_000)
"""Four generator processes of at most 18,750 connections each (an open-file hard limit of 20,000 per process here).
100,000 needs six: on 2 cores six or seven generator processes starved each other while ramping, missed Locust's
heartbeats and were taken for lost before the first step (steps to 100,000 with six processes and spawn rate 500/s
did that on both servers)."""
FULL = Plan(arms=(Arm("nchan", "nchan", FULL_STEPS, processes=4, workers=4),
                  Arm("reference", "reference", FULL_STEPS, processes=4, workers=4),
                  Arm("one-process", "nchan", (4_000, 8_000, 12_000, 16_000, 0), processes=1)))
"""The one-process arm's last step 0 is filled in with what one process's open-file limit allows."""
QUICK = Plan(arms=(Arm("nchan", "nchan", (1000, 2000, 3000), processes=2, workers=2),
                   Arm("reference", "reference", (1000, 2000, 3000), processes=2, workers=2),
                   Arm("one-process", "nchan", (1000, 2000, 3000), processes=1, workers=1)),
             hold=8.0, settle=2.0, settle_max=4.0, rate=0.5, spawn_rate=500.0, ramp_timeout=60.0)


# open files --------------------------------------------------------------------------------------------------------

def raise_open_files() -> tuple[int, str]:
    """Raise this process's RLIMIT_NOFILE (inherited by everything it starts) as far as allowed; the limit
    and a sentence saying what was done."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        ceiling = int(Path("/proc/sys/fs/nr_open").read_text())
    except (OSError, ValueError):
        ceiling = hard
    if os.geteuid() == 0 and hard != resource.RLIM_INFINITY and hard < ceiling:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, ceiling))
            return ceiling, (f"raised RLIMIT_NOFILE from {soft:,}/{hard:,} (soft/hard) to {ceiling:,} "
                             "(/proc/sys/fs/nr_open) for this bench and every process it starts (as root)")
        except (ValueError, OSError) as error:
            note = (f"could not raise the hard open-file limit {hard:,} to {ceiling:,} as root ({error}: "
                    "no CAP_SYS_RESOURCE)")
    else:
        note = f"the hard open-file limit is {hard:,}"
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard, (f"{note}; each process the bench starts may open {hard:,} files, so connections are spread over "
                  "processes")


def processes_for(connections: int, open_files: int) -> int:
    """Processes needed so that none holds more than FD_USE of `open_files` connections.

    The same arithmetic would let `rtcap run` suggest `--processes` / `--expect-workers` for a sweep (see
    README.md, "Several machines")."""
    return max(1, math.ceil(connections / max(1, int((open_files - FD_MARGIN) * FD_USE))))


# targets -----------------------------------------------------------------------------------------------------------

def serve_nchan(argv: list[str]) -> int:
    """`python -m rtcap.bench.scale serve-nchan --port P --workers N --prefix DIR`: nginx+nchan with the example's
    configuration, N workers and a reuseport listener (the kernel spreads connections over the workers); execs nginx."""
    from rtcap.targets.examples.nchan.serve import find_module, find_nginx, render_config

    parser = argparse.ArgumentParser(prog="rtcap.bench.scale serve-nchan")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--prefix", type=Path, required=True)
    args = parser.parse_args(argv)
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    text = render_config(args.port, args.prefix, find_module(), worker_connections=limit - 64)
    edits = {"worker_processes 1;": f"worker_processes {args.workers};",
             f"listen 127.0.0.1:{args.port};": f"listen 127.0.0.1:{args.port} reuseport;"}
    for old, new in edits.items():
        if old not in text:
            raise SystemExit(f"the nchan example's configuration changed: no {old!r} in it")
        text = text.replace(old, new)
    args.prefix.mkdir(parents=True, exist_ok=True)
    args.prefix.chmod(0o755)  # nginx started as root runs its workers as nobody
    (args.prefix / "nginx.conf").write_text(text)
    nginx = find_nginx()
    os.execv(nginx, [nginx, "-c", str(args.prefix / "nginx.conf"), "-p", f"{args.prefix}/", "-e", "stderr",
                     "-g", "daemon off;"])
    return 0  # pragma: no cover - execv does not return


def start_server(arm: Arm, workers: int, work: Path) -> LaunchedTarget:
    """Start the arm's server on a free loopback port (targets/launch.py waits for its /healthz)."""
    if arm.server == "nchan":
        start = ["{python}", "-m", "rtcap.bench.scale", "serve-nchan", "--port", "{port}", "--workers", str(workers),
                 "--prefix", str(work / f"{arm.name}-nginx")]
    else:
        start = ["{python}", "-m", "rtcap.targets.reference", "--port", "{port}", "--rate", "0", "--workers",
                 str(workers), "--broker", "redis" if workers > 1 else "memory", "--max-connections", "1000000",
                 "--log-level", "warning"]
    adapter = adapter_from_dict({"name": arm.name, "base_url": "http://127.0.0.1:{port}",
                                 "transports": {"sse": {"url": "/sse?channel={channel}"}},
                                 "process": {"start": start, "ready_url": "/healthz", "start_timeout": 60.0}})
    return launch(adapter, 0.0, 64, log_path=work / f"{arm.name}-server.log")


def start_agent(pid: int, log: Path) -> tuple[subprocess.Popen, str]:
    """`rtcap agent --pid PID` (the server's whole process tree) on a free loopback port; its URL."""
    agent = subprocess.Popen([sys.executable, "-m", "rtcap.loadtests.run.agent", "--pid", str(pid), "--listen-port",
                              "0"], stdout=subprocess.PIPE, stderr=log.open("w"), text=True, start_new_session=True)
    line = agent.stdout.readline()  # its first line names its address; EOF when it refused to start
    if "serving " not in line:
        agent.kill()
        raise RuntimeError(f"rtcap agent did not start: {log.read_text()}")
    return agent, line.split("serving ", 1)[1].split()[0]


def run_adapter(arm: Arm, base_url: str, agent_url: str, rate: float, path: Path) -> Path:
    """The adapter `rtcap run` gets: the started server's URLs, rtcap publishing, sampled through the agent."""
    if arm.server == "nchan":
        fields = ('[message]\nseq = "seq"\nts = "ts"\n[publish]\nmode = "http"\nurl = "/pub?channel={channel}"\n'
                  'headers = { "Content-Type" = "application/json" }\n'
                  'body = \'{{"seq": {seq}, "ts": {ts}, "pad": "{padding}"}}\'\n')
    else:
        fields = ('[message]\nseq = "seq"\nts = "ts"\n[publish]\nmode = "http"\nurl = "/publish?channel={channel}"\n'
                  'headers = { "Content-Type" = "application/json" }\nbody = \'{{"payload": "{padding}"}}\'\n')
    path.write_text(f'name = "scale-{arm.name}"\nbase_url = "{base_url}"\nchannel = "live"\n{fields}'
                    f'rate = {rate}\npayload = 64\n[transports.sse]\nurl = "/sse?channel={{channel}}"\n'
                    f'[process]\nagent_url = "{agent_url}"\n')
    return path


class RssSampler:
    """RSS of process trees by name ("target", "generator"), every second, on a thread: memory only, never
    connections, so it keeps up where rtcap's own sampler (which counts each process's sockets) may not."""

    def __init__(self) -> None:
        self.roots: dict[str, int] = {}
        self.rows: list[tuple[float, str, int]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._done.wait(1.0):
            for name, pid in list(self.roots.items()):
                total = 0
                try:
                    tree = psutil.Process(pid)
                    members = [tree, *tree.children(recursive=True)]
                except psutil.Error:
                    continue
                for member in members:  # a member that exits between the listing and the read counts nothing
                    with contextlib.suppress(psutil.Error):
                        total += member.memory_info().rss
                self.rows.append((time.time(), name, total))

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join(timeout=10)

    def median(self, name: str, t_start: float, t_end: float) -> float:
        values = [rss for t, who, rss in self.rows if who == name and t_start <= t <= t_end]
        return float(np.median(values)) if values else float("nan")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# one arm -----------------------------------------------------------------------------------------------------------

@dataclass
class Result:
    """What one arm measured and where it stopped."""

    arm: str
    server: str
    processes: int
    workers: int
    command: str
    exit_code: int
    steps: list[dict[str, Any]] = field(default_factory=list)
    generator_bytes_per_conn: float | None = None
    target_bytes_per_conn: float | None = None
    kernel_bytes_per_conn: float | None = None
    cpu_per_1k_conn: float | None = None
    """The busiest generator process's CPU (% of a core) per 1,000 connections it held, at the largest valid step."""
    largest_valid: int = 0
    agent_cpu_percent: float = float("nan")
    """CPU of `rtcap agent` (the target's sampler, which counts its sockets) over the sweep, % of a core."""
    stopped_by: str = ""
    refused: str = ""


def run_arm(arm: Arm, plan: Plan, work: Path, open_files: int) -> Result:
    """Start the server and its agent, run the sweep, stop both; the figures of its run directory."""
    top = max(arm.steps)
    processes = arm.processes or processes_for(top, open_files)
    workers = arm.workers or processes_for(top, open_files)
    server = start_server(arm, workers, work)
    agent, agent_url = start_agent(server.pid, work / f"{arm.name}-agent.log")
    try:
        adapter = run_adapter(arm, server.adapter.base_url, agent_url, plan.rate, work / f"{arm.name}.toml")
        argv = ["run", "--host", server.adapter.base_url, "--target", str(adapter), "--transports", "sse",
                "--steps", ",".join(map(str, arm.steps)), "--hold", f"{plan.hold:g}", "--settle", f"{plan.settle:g}",
                "--settle-max", f"{plan.settle_max:g}", "--spawn-rate", f"{plan.spawn_rate:g}", "--ramp-timeout",
                f"{plan.ramp_timeout:g}", "--processes", str(processes), "--source-ips", SOURCE_IPS,
                "--out-dir", str(work), "--name", arm.name, "--no-report"]
        command = "rtcap " + " ".join(argv)
        print(f"[{arm.name}] {server.adapter.base_url}: {arm.server} with {workers} worker process(es); {command}",
              flush=True)
        refused, began, agent_cpu = [], time.monotonic(), float("nan")
        with RssSampler() as memory:
            memory.roots["target"] = server.pid
            sweep = subprocess.Popen([sys.executable, "-m", "rtcap.loadtests.cli", *argv], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, cwd=ROOT)
            memory.roots["generator"] = sweep.pid  # rtcap run and its Locust processes
            for line in sweep.stdout:  # ends when the sweep does (bounded by its steps and --ramp-timeout)
                print(f"[{arm.name}] {line}", end="", flush=True)
                if "error:" in line:
                    refused.append(line.strip())
            code = sweep.wait()
        took = time.monotonic() - began
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(agent.pid).cpu_times()
            agent_cpu = 100 * (times.user + times.system) / took
    finally:
        _stop(agent)
        server.stop(timeout=30)
    result = Result(arm.name, arm.server, processes, workers, command, code, refused="; ".join(refused),
                    agent_cpu_percent=agent_cpu)
    run_dir = work / arm.name
    if (run_dir / "steps.csv").exists():
        judge(result, run_dir, memory, len(arm.steps))
    elif refused:
        log = run_dir / "locust" / "sse" / "locust.log"
        lost = log.exists() and "was lost while it held" in log.read_text(errors="replace")
        result.stopped_by = (f"before the first step: {STOPPED_BY[F.WORKER_LOST]} ({log})" if lost
                             else f"refused before load: {result.refused}")
    return result


def _slope(x: list[float], y: list[float]) -> float | None:
    try:
        return fit_line(x, y).slope
    except (FitError, ValueError):
        return None


def judge(result: Result, run_dir: Path, memory: RssSampler, planned: int) -> None:
    """Fill `result` from a finished run directory and the bench's memory samples: steps, slopes, and where the
    sweep stopped."""
    steps = pd.read_csv(run_dir / "steps.csv")
    for row in steps.to_dict("records"):
        result.steps.append({
            "users": int(row["users"]), "valid": bool(row["valid"]),
            "connections": int(row["connections"]) if np.isfinite(row["connections"]) else 0,
            "flags": row["flags"] if isinstance(row["flags"], str) else "",
            "generator_cpu_percent": row["generator_cpu_percent"],
            "generator_lag_p99_ms": row.get("generator_lag_p99_ms"),
            "delivery_p99_ms": row["latency_p99_ms"], "msgs_per_s": row["msgs_per_s"],
            "kernel_tcp_bytes": row["sockstat_tcp_mem_bytes"],
            "target_rss_bytes": memory.median("target", row["t_start"], row["t_end"]),
            "generator_rss_bytes": memory.median("generator", row["t_start"], row["t_end"])})
    held = [s for s in result.steps if s["connections"] > 0]
    x = [s["connections"] for s in held]
    result.generator_bytes_per_conn = _slope(x, [s["generator_rss_bytes"] for s in held])
    result.target_bytes_per_conn = _slope(x, [s["target_rss_bytes"] for s in held])
    result.kernel_bytes_per_conn = _slope(x, [s["kernel_tcp_bytes"] for s in held])
    valid = [s for s in result.steps if s["valid"]]
    if valid:
        best = max(valid, key=lambda s: s["connections"])
        result.largest_valid = best["connections"]
        per_process = best["connections"] / result.processes
        result.cpu_per_1k_conn = float(best["generator_cpu_percent"]) / per_process * 1000 if per_process else None
    invalid = [s for s in result.steps if not s["valid"]]
    if invalid:
        flags = invalid[0]["flags"].split(";")
        named = [STOPPED_BY[f] for f in STOPPED_BY if f in flags] or [f"flags {invalid[0]['flags']}"]
        result.stopped_by = f"step of {invalid[0]['users']:,} users invalid: " + "; ".join(named)
    elif result.exit_code or len(result.steps) < planned:
        log = run_dir / "locust" / "sse" / "locust.log"
        lost = log.exists() and "was lost while it held" in log.read_text(errors="replace")
        result.stopped_by = (f"the sweep ended after {len(result.steps)} of {planned} steps (rtcap run exited "
                             f"{result.exit_code}{': ' + result.refused if result.refused else ''})"
                             + (f"; {STOPPED_BY[F.WORKER_LOST]}" if lost else "") + f"; see {log}")


def next_limits(result: Result, open_files: int) -> list[str]:
    """For a sweep that held every step: which limit of this box comes next, and where."""
    if not result.largest_valid:
        return []
    limits = read_host_limits()
    n = result.largest_valid
    found = [f"open files: {result.processes} generator process(es) x {open_files - FD_MARGIN:,} = "
             f"{result.processes * (open_files - FD_MARGIN):,} connections"]
    if limits.port_count:
        found.append(f"ports: {SOURCES} source addresses x {limits.port_count - PORT_MARGIN:,} = "
                     f"{SOURCES * (limits.port_count - PORT_MARGIN):,} connections to one server port")
    per_conn = sum(v for v in (result.generator_bytes_per_conn, result.target_bytes_per_conn,
                               result.kernel_bytes_per_conn) if v and v > 0)
    available = _mem_available()
    if per_conn and available:
        found.append(f"memory: {available / 2**30:.1f} GiB available at the end / {per_conn / 1024:.1f} KiB per "
                     f"connection (generator + target + kernel) = {n + int(available / per_conn):,} connections")
    if result.cpu_per_1k_conn:
        found.append(f"CPU: a generator process at {CPU_LIMIT:g}% of a core would hold about "
                     f"{int(CPU_LIMIT / result.cpu_per_1k_conn * 1000):,} connections at this event rate "
                     "(a linear extrapolation, not measured: timer lag from each event's burst of deliveries came first in "
                     "every full run)")
    return found


def _mem_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


# output ------------------------------------------------------------------------------------------------------------

def _kib(value: float | None) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value / 1024:.1f} KiB"


def report(result: Result, open_files: int) -> str:
    """The arm's table and its sentences."""
    lines = [f"\n{result.arm}: {result.server}, {result.workers} server worker(s), {result.processes} generator "
             f"process(es)\n  {result.command}"]
    if result.steps:
        table = pd.DataFrame([{
            "users": s["users"], "held": s["connections"], "valid": "yes" if s["valid"] else s["flags"],
            "gen CPU % (busiest)": f"{s['generator_cpu_percent']:.0f}",
            "gen lag p99 ms": f"{s['generator_lag_p99_ms']:.0f}",
            "delivery p99 ms": f"{s['delivery_p99_ms']:.0f}", "target RSS MiB": f"{s['target_rss_bytes'] / 2**20:.0f}",
            "gen RSS MiB": f"{s['generator_rss_bytes'] / 2**20:.0f}"} for s in result.steps])
        lines.append(table.to_string(index=False))
    lines.append(f"  memory per connection: generator {_kib(result.generator_bytes_per_conn)}, target "
                 f"{_kib(result.target_bytes_per_conn)}, kernel TCP (both ends) {_kib(result.kernel_bytes_per_conn)}")
    lines.append(f"  rtcap agent (samples the target, counting its sockets): {result.agent_cpu_percent:.0f}% of a core "
                 "over the sweep")
    if result.cpu_per_1k_conn is not None:
        lines.append(f"  busiest generator process: {result.cpu_per_1k_conn:.2f}% of a core per 1,000 connections "
                     f"at the largest valid step ({result.largest_valid:,} connections, "
                     f"{result.largest_valid // result.processes:,} per process)")
    if result.stopped_by:
        lines.append(f"  stopped: {result.stopped_by}")
    else:
        lines.append(f"  held every step (largest {result.largest_valid:,}); the next limits of this box:")
        lines += [f"    - {limit}" for limit in next_limits(result, open_files)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run every arm and print what each held."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve-nchan"]:
        return serve_nchan(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="up to 3,000 connections, short steps")
    parser.add_argument("--out-dir", type=Path, help="keep the run directories and scale.json here (default: a "
                                                     "temporary directory)")
    parser.add_argument("--arms", help="comma list of arms to run (default: all)")
    parser.add_argument("--steps", help="the arms' steps instead of the plan's, e.g. 10000,20000,30000")
    parser.add_argument("--processes", type=int, default=0, help="generator processes instead of the plan's")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    open_files, note = raise_open_files()
    print(f"note: {note}", flush=True)
    one = (open_files - 2 * FD_MARGIN) // 500 * 500  # one process: as near its open-file limit as preflight allows
    steps = tuple(int(n) for n in args.steps.split(",")) if args.steps else None
    arms = [Arm(a.name, a.server, steps or tuple(s or one for s in a.steps), args.processes or a.processes, a.workers)
            for a in plan.arms
            if not args.arms or a.name in args.arms.split(",")]
    started = time.monotonic()
    results = []
    with tempfile.TemporaryDirectory(prefix="rtcap-scale-") as tmp:
        work = args.out_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for arm in arms:
            results.append(run_arm(arm, plan, work, open_files))
        for result in results:
            print(report(result, open_files))
        if args.out_dir:
            (work / "scale.json").write_text(json.dumps({"note": note, "plan": asdict(plan),
                                                         "results": [asdict(r) for r in results]}, indent=1,
                                                        default=float))
            print(f"\nrun directories and scale.json: {work}")
    print(f"\n{len(results)} arm(s) in {(time.monotonic() - started) / 60:.1f} min; rate {plan.rate:g} events/s per "
          f"connection, steps of {plan.hold:g} s, spawn rate {plan.spawn_rate:g}/s, source addresses {SOURCE_IPS}")
    return 0 if all(r.exit_code == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
