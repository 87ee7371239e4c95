"""The report stage at scale: a synthesized one-hour run at up to 10,000 connections, collected and rendered.

A real hour at 10k connections cannot be made on this box in a benchmark's time, so its record is written
the way the generator and the sampler write theirs: one timeline row per second (an HdrHistogram of that
second's deliveries, one event per connection per second), 40 step windows of 90 s climbing to 10,000
connections, and the target's and generator's samples every 0.5 s. Then the three stages a user waits for
are timed: collect (steps.csv from 3,600 seconds of histograms), the markdown summary (`rtcap report
--format md`, which also computes summary.json) and the HTML report (`rtcap report`), the last two as the
commands a user runs.

    python -m rtcap.bench.report_scale
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rtcap.bench.truth import ROOT
from rtcap.loadtests.generator.timeline import encode_histogram, new_histogram
from rtcap.loadtests.run.collect import collect_transport
from rtcap.reports import schema

HOUR_S = 3600
STEPS = 40
TOP = 10_000
SAMPLE_S = 0.5


def synthesize(record: Path, t0: int, seconds: int = HOUR_S) -> list[dict[str, Any]]:
    """Write `seconds` of timeline and step windows into `record`; return the samples the sampler would have taken."""
    rng = random.Random(1)
    record.mkdir(parents=True, exist_ok=True)
    hold = seconds // STEPS
    users = [TOP * (i + 1) // STEPS for i in range(STEPS)]
    with (record / schema.WINDOWS_FILE).open("w") as handle:
        for i, n in enumerate(users):
            handle.write(json.dumps({"step": i, "users": n, "t_start": t0 + i * hold + 5,
                                     "t_end": t0 + (i + 1) * hold}) + "\n")
    with (record / "timeline.jsonl").open("w") as handle:
        for second in range(seconds):
            n = users[min(second // hold, STEPS - 1)]
            histogram = new_histogram()
            for _ in range(200):  # 200 distinct latencies, as a real second has
                histogram.record_value(rng.randint(800, 40_000), max(1, n // 200))
            lag = new_histogram()
            lag.record_value(rng.randint(200, 5_000), 4)
            handle.write(json.dumps({
                "t": t0 + second, "transport": "ws", "delivered": n, "requests": 0, "connects": 0, "errors": 0,
                "open_connections": n, "bytes_received": 140 * n, "bytes_sent": 0, "payload_bytes": 100 * n,
                "delivery_hist": encode_histogram(histogram), "connect_hist": None, "request_hist": None}) + "\n")
            handle.write(json.dumps({"t": t0 + second, "transport": "generator", "lag_hist": encode_histogram(lag),
                                     "lag_samples": 4}) + "\n")
    samples = []
    for k in range(int(seconds / SAMPLE_S)):
        t = t0 + k * SAMPLE_S
        n = users[min(int(k * SAMPLE_S) // hold, STEPS - 1)]
        for role, pid, base, per in (("target", 100, 60e6, 30e3), ("generator", 200, 90e6, 15e3)):
            samples.append({"t": t, "elapsed_s": t - t0, "transport": "ws", "role": role, "pid": pid,
                            "rss_bytes": int(base + per * n), "uss_bytes": int(base + per * n * 0.9),
                            "cpu_percent": 20 + n / 200, "num_fds": n + 20, "tcp_established": n,
                            "sockstat_tcp_inuse": n * 2, "sockstat_tcp_mem_bytes": 4096 * n, "step": 0,
                            "phase": "hold", "source": "synthesized"})
    return samples


def _timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def measure(work: Path, seconds: int = HOUR_S) -> dict[str, Any]:
    """Synthesize the run into `work/run` and time collect, the summary and the report; seconds each."""
    run = work / "run"
    t0 = int(time.time()) - seconds - 60
    samples = synthesize(run / "locust" / "ws", t0, seconds)
    started = time.perf_counter()
    rows = collect_transport("ws", run / "locust" / "ws", samples)
    collect_s = time.perf_counter() - started
    schema.write_steps(run, rows)
    schema.write_samples(run, samples)
    schema.write_meta(run, schema.build_meta(
        name="report-scale", transports=["ws"], steps=[r["users"] for r in rows], hold_s=seconds / STEPS,
        target={"name": "synthesized"}, options={}, slo={"delivery_p99_ms": 250.0, "error_rate": 0.01},
        start=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0)), end=None, notes=["synthesized by bench"]))
    rtcap = [sys.executable, "-m", "rtcap.loadtests.cli", "report"]
    summary_s = _timed([*rtcap, "--format", "md", "-o", str(run / schema.SUMMARY_MD_FILE), str(run)])
    report_s = _timed([*rtcap, str(run)])
    return {"seconds": seconds, "steps": len(rows), "top_connections": TOP, "samples": len(samples),
            "collect_s": round(collect_s, 2), "summary_md_s": round(summary_s, 2), "report_html_s": round(report_s, 2),
            "report_bytes": (run / schema.REPORT_FILE).stat().st_size, "run_dir": str(run)}


def describe(result: dict[str, Any]) -> str:
    """One paragraph for the benchmark's output."""
    return (f"Report stage, a synthesized {result['seconds'] // 60}-minute run climbing to "
            f"{result['top_connections']:,} connections ({result['steps']} steps, {result['samples']:,} samples): "
            f"collect {result['collect_s']:.2f} s, summary (rtcap report --format md) {result['summary_md_s']:.2f} s, "
            f"HTML report (rtcap report) {result['report_html_s']:.2f} s, {result['report_bytes'] / 1e6:.1f} MB.")


if __name__ == "__main__":
    import tempfile

    print(describe(measure(Path(tempfile.mkdtemp(prefix="rtcap-report-scale-")))))
