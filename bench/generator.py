"""What the load generator itself costs: memory per held connection and CPU per delivered event.

    python -m rtcap.bench.generator            # about 15 minutes on 2 cores
    python -m rtcap.bench.generator --quick    # about 5 minutes

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
- **artillery**: Artillery 2's ws engine (`npm install artillery@2` into a temporary folder) when Node and
  npm are here, sampled here; it receives without parsing or timing, so its events are counted as the
  events published times the connections nchan reported held. Without Node it is skipped, and says so.

Per arm: the generator's memory per held connection (least-squares slope of RSS against connections over
the steps), CPU seconds per 1,000 delivered events and delivered events per CPU-second at each step, polls
per CPU-second (rtcap's poll users), and the largest step rtcap counted valid. Then the report stage at
scale (bench/report_scale.py). A table goes to stdout and everything to bench/results/generator-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil

from rtcap.bench import report_scale
from rtcap.bench.truth import ROOT, _rtcap
from rtcap.loadtests.run.publisher import Publisher
from rtcap.reports import schema
from rtcap.targets.adapter import load_adapter
from rtcap.targets.launch import LaunchedTarget, launch

NCHAN_EXAMPLE = ROOT / "targets" / "examples" / "nchan" / "adapter.toml"
NCHAN_CONNECTIONS = 19_500
"""nginx worker_connections for the benchmark's nchan (the example's default, 4,096, would cap every arm)."""
RESULTS = ROOT / "bench" / "results"
SAMPLE_S = 0.5


@dataclass(frozen=True)
class Plan:
    """The staircase every arm climbs, and the load on it."""

    steps: tuple[int, ...] = (1000, 3000, 6000)
    rate: float = 10.0
    hold: float = 20.0
    transports: str = "ws,sse,poll"
    held_per_user: int = 50
    """The crowd arm: connections each ws/sse listener holds (--held-per-user)."""
    many: tuple[int, ...] = (5000, 10000, 19000)
    """The held arm: connections one process holds at `many_rate` events/s each."""
    many_rate: float = 0.05
    adapter: Path = NCHAN_EXAMPLE
    """The target: `main` passes `nchan_adapter`'s copy, which allows NCHAN_CONNECTIONS."""


QUICK = Plan(steps=(500, 1500), rate=10.0, hold=10.0, many=(2000, 4000))
NOFILE = 65536
"""Open files the held arm may use (raised for this process and its children: root may raise the hard limit)."""


@dataclass
class Step:
    """What one generator did while it held one step."""

    connections: int
    seconds: float
    rss_bytes: float | None
    cpu_s: float | None
    delivered: float
    requests: float = 0.0
    valid: bool | None = None
    flags: str = ""

    @property
    def events_per_cpu_s(self) -> float | None:
        return self.delivered / self.cpu_s if self.cpu_s else None

    @property
    def requests_per_cpu_s(self) -> float | None:
        return self.requests / self.cpu_s if self.cpu_s else None


@dataclass
class Arm:
    """One generator's steps, or why it was not measured."""

    name: str
    steps: list[Step] = field(default_factory=list)
    skipped: str | None = None

    def bytes_per_connection(self) -> float | None:
        """Least-squares slope of the generator's RSS against the connections it held."""
        points = [(s.connections, s.rss_bytes) for s in self.steps if s.rss_bytes is not None]
        if len({c for c, _ in points}) < 2:
            return None
        slope, _intercept = np.polyfit([c for c, _ in points], [r for _, r in points], 1)
        return float(slope)

    def largest_valid(self) -> int | None:
        return max((s.connections for s in self.steps if s.valid), default=None)

    def summary(self) -> dict[str, Any]:
        per_conn = self.bytes_per_connection()
        return {"arm": self.name, "skipped": self.skipped, "bytes_per_connection": per_conn,
                "largest_valid_step": self.largest_valid(),
                "steps": [{**asdict(s), "events_per_cpu_s": s.events_per_cpu_s,
                           "requests_per_cpu_s": s.requests_per_cpu_s} for s in self.steps]}


# -- the rtcap arm ----------------------------------------------------------------------------------------

def nchan_adapter(work: Path) -> Path:
    """The nchan example's adapter, starting nginx with NCHAN_CONNECTIONS worker connections."""
    text = NCHAN_EXAMPLE.read_text(encoding="utf-8")
    start = '"--port", "{port}"]'
    if start not in text:
        raise SystemExit(f"{NCHAN_EXAMPLE}: its start command changed; cannot raise worker_connections")
    path = work / "nchan-adapter.toml"
    path.write_text(text.replace(start, f'"--port", "{{port}}", "--worker-connections", "{NCHAN_CONNECTIONS}"]'),
                    encoding="utf-8")
    return path


def rtcap_arms(work: Path, plan: Plan, name: str = "rtcap", transports: str | None = None, per_user: int = 1,
               steps: tuple[int, ...] | None = None, rate: float | None = None) -> list[Arm]:
    """One `rtcap run` against nchan; an arm per transport, read from its run directory."""
    _rtcap("run", "--target", str(plan.adapter), "--transports", transports or plan.transports, "--steps",
           ",".join(map(str, steps or plan.steps)), "--hold", str(plan.hold), "--rate", str(rate or plan.rate),
           "--spawn-rate", "500", "--held-per-user", str(per_user), "--out-dir", str(work), "--name", name)
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


# -- arms sampled from here -------------------------------------------------------------------------------

class TreeSampler:
    """Samples a process and its descendants (RSS summed, CPU seconds summed) every SAMPLE_S on a thread."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.samples: list[tuple[float, int, float]] = []  # (t, rss bytes, cpu seconds so far)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            try:
                processes = [self.root, *self.root.children(recursive=True)]
                rss = cpu = 0.0
                for process in processes:
                    with process.oneshot():
                        rss += process.memory_info().rss
                        times = process.cpu_times()
                        cpu += times.user + times.system
            except psutil.Error:
                return
            self.samples.append((time.time(), int(rss), cpu))

    def window(self, t_start: float, t_end: float) -> tuple[float | None, float | None]:
        """(mean RSS, CPU seconds used) between two times."""
        inside = [s for s in self.samples if t_start <= s[0] <= t_end]
        if len(inside) < 2:
            return None, None
        return float(np.mean([s[1] for s in inside])), inside[-1][2] - inside[0][2]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _nchan(work: Path, plan: Plan, name: str) -> tuple[LaunchedTarget, Publisher]:
    adapter = load_adapter(plan.adapter)
    target = launch(adapter, plan.rate, 64, log_path=work / f"{name}-nchan.log")
    live = target.adapter
    publisher = Publisher(live.publish, live.channel, plan.rate, limit_s=3600.0).start()
    return target, publisher


def _held(port: int) -> int:
    """Established connections to nchan's port (the server's side of each)."""
    return sum(1 for c in psutil.net_connections("tcp")
               if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port)


def stock_arm(work: Path, plan: Plan) -> Arm:
    """bench/stock_ws.py against a fresh nchan."""
    target, publisher = _nchan(work, plan, "stock")
    arm = Arm("stock ws (gevent + websocket-client)")
    try:
        url = target.adapter.url_for("ws", channel=target.adapter.channel)
        proc = subprocess.Popen([sys.executable, "-m", "rtcap.bench.stock_ws", url, "--steps",
                                 ",".join(map(str, plan.steps)), "--hold", str(plan.hold)],
                                stdout=subprocess.PIPE, text=True, cwd=ROOT)
        sampler = TreeSampler(proc.pid)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                step = json.loads(line)
                rss, cpu = sampler.window(step["t_start"], step["t_end"])
                flags = f"{step['failed']} connections failed" if step["failed"] else ""
                arm.steps.append(Step(step["connections"], step["t_end"] - step["t_start"], rss, cpu,
                                      step["delivered"], valid=not flags and cpu is not None, flags=flags))
        finally:
            sampler.stop()
            _end(proc)
    finally:
        publisher.stop()
        target.stop()
    return arm


def artillery_arm(work: Path, plan: Plan) -> Arm:
    """Artillery 2's ws engine holding the same steps, if Node and npm are here."""
    arm = Arm("artillery 2 ws (Node)")
    npm = shutil.which("npm")
    if not shutil.which("node") or not npm:
        arm.skipped = "Node.js and npm are not installed"
        return arm
    folder = Path(tempfile.mkdtemp(prefix="rtcap-artillery-"))
    try:
        # --ignore-scripts: Artillery's browser engine downloads a browser at install; the ws engine needs none.
        installed = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error",
                                    "artillery@2"], cwd=folder, capture_output=True, text=True, timeout=600)
        binary = folder / "node_modules" / ".bin" / "artillery"
        if installed.returncode != 0 or not binary.exists():
            arm.skipped = f"npm install artillery@2 failed: {installed.stderr.strip()[-300:]}"
            return arm
        _artillery_steps(work, plan, arm, binary)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return arm


def _artillery_steps(work: Path, plan: Plan, arm: Arm, binary: Path) -> None:
    target, publisher = _nchan(work, plan, "artillery")
    try:
        url = target.adapter.url_for("ws", channel=target.adapter.channel)
        port = int(url.split(":")[2].split("/")[0])
        ramp_s, settle_s = 2.0, 3.0
        phases, previous = [], 0
        for step in plan.steps:
            phases += [{"duration": ramp_s, "arrivalCount": step - previous}, {"pause": settle_s + plan.hold}]
            previous = step
        total = len(plan.steps) * (ramp_s + settle_s + plan.hold) + 30
        script = {"config": {"target": url, "phases": phases},
                  "scenarios": [{"engine": "ws", "flow": [{"think": total}]}]}
        path = work / "artillery.json"
        path.write_text(json.dumps(script), encoding="utf-8")
        log = (work / "artillery.log").open("w")
        proc = subprocess.Popen([str(binary), "run", str(path)], stdout=log, stderr=subprocess.STDOUT,
                                cwd=work, start_new_session=True)
        sampler = TreeSampler(proc.pid)
        try:
            started = time.time()
            for i, step in enumerate(plan.steps):
                t_start = started + (i + 1) * (ramp_s + settle_s) + i * plan.hold
                t_end = t_start + plan.hold
                time.sleep(max(0.0, t_end - time.time()))
                held = _held(port)
                rss, cpu = sampler.window(t_start, t_end)
                flags = [f"only {held} of {step} held"] if held < step * 0.99 else []
                if proc.poll() is not None or cpu is None or cpu < 0.01 * plan.hold:
                    flags.append("artillery not running through the step")  # its events would be counted, not seen
                arm.steps.append(Step(held, t_end - t_start, rss, cpu, plan.rate * held * (t_end - t_start),
                                      valid=not flags, flags=";".join(flags)))
        finally:
            sampler.stop()
            _end(proc, group=True)
            log.close()
    finally:
        publisher.stop()
        target.stop()


def raise_open_files(limit: int) -> None:
    """Raise this process's open-file limits (children inherit them); root may raise the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < limit:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
        except (ValueError, OSError) as error:
            print(f"could not raise the open-file limit to {limit} ({error}); the held arm is bounded by {hard}")
            return
    elif soft < limit:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard), hard))


def _end(proc: subprocess.Popen, group: bool = False) -> None:
    """Stop a child (and its process group) and reap it."""
    if proc.poll() is None:
        try:
            if group:
                os.killpg(proc.pid, signal.SIGTERM)
            else:
                proc.terminate()
            proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait(5)


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


def ratios(arms: list[Arm]) -> str:
    """Each rtcap WebSocket and SSE arm against the stock client and Artillery: memory per connection and
    events per CPU-second over the valid steps, as ratios (above 1: rtcap needs more memory / does more per
    CPU-second)."""
    references = [a for a in arms if not a.name.startswith("rtcap") and not a.skipped and a.steps]
    lines = []
    for arm in arms:
        if not arm.name.startswith("rtcap") or " poll" in arm.name or not arm.steps:
            continue
        for ref in references:
            parts = []
            mine, theirs = arm.bytes_per_connection(), ref.bytes_per_connection()
            if mine and theirs:
                parts.append(f"memory per connection {mine / theirs:.2f}x")
            mine, theirs = mean_events_per_cpu_s(arm), mean_events_per_cpu_s(ref)
            if mine and theirs:
                parts.append(f"events per CPU-second {mine / theirs:.2f}x")
            if parts:
                lines.append(f"- {arm.name} vs {ref.name}: " + ", ".join(parts))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rtcap.bench.generator", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"steps {QUICK.steps}, {QUICK.hold:g} s each")
    parser.add_argument("--arms", default="rtcap,crowd,held,stock,artillery,report",
                        help="which arms to run (comma-separated: rtcap, crowd, held, stock, artillery, report)")
    parser.add_argument("--work", type=Path, help="where run directories go (default: a temporary folder, kept)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan()
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
