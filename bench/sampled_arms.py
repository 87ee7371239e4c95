"""The generators rtcap is compared with in bench/generator.py: the stock clients (bench/stock_ws.py,
bench/stock_poll.py) and Artillery, each against a fresh nchan, their process trees sampled from here."""

from __future__ import annotations

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
from pathlib import Path

import numpy as np
import psutil

from rtcap.bench.arms import Arm, Plan, Step
from rtcap.bench.truth import ROOT
from rtcap.loadtests.run.publisher import Publisher
from rtcap.targets.adapter import load_adapter
from rtcap.targets.launch import LaunchedTarget, launch

SAMPLE_S = 0.5


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
    return sampled_client_arm(work, plan, "stock", "ws", "stock ws (gevent + websocket-client)", "rtcap.bench.stock_ws")


def stock_poll_arm(work: Path, plan: Plan) -> Arm:
    """bench/stock_poll.py (gevent + geventhttpclient, one keep-alive client per viewer) against a fresh nchan,
    polling every `plan.poll_interval` seconds like rtcap's poll users."""
    return sampled_client_arm(work, plan, "stock-poll", "poll", "stock poll (gevent + geventhttpclient)",
                              "rtcap.bench.stock_poll", "--interval", str(plan.poll_interval))


def sampled_client_arm(work: Path, plan: Plan, name: str, transport: str, label: str, module: str,
                       *extra: str) -> Arm:
    """A stock client (`python -m module URL --steps ... --hold ... *extra`, printing one JSON line per held
    step: connections, t_start, t_end, delivered, failed, and polls for a polling one) against a fresh nchan,
    on the URL of the adapter's `transport`; its process tree sampled here."""
    target, publisher = _nchan(work, plan, name)
    arm = Arm(label)
    try:
        url = target.adapter.url_for(transport, channel=target.adapter.channel)
        proc = subprocess.Popen([sys.executable, "-m", module, url, "--steps", ",".join(map(str, plan.steps)),
                                 "--hold", str(plan.hold), *extra], stdout=subprocess.PIPE, text=True, cwd=ROOT)
        sampler = TreeSampler(proc.pid)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                step = json.loads(line)
                rss, cpu = sampler.window(step["t_start"], step["t_end"])
                failed = "polls" if "polls" in step else "connections"
                flags = f"{step['failed']} {failed} failed" if step["failed"] else ""
                arm.steps.append(Step(step["connections"], step["t_end"] - step["t_start"], rss, cpu,
                                      step["delivered"], requests=step.get("polls", 0.0),
                                      valid=not flags and cpu is not None, flags=flags))
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
