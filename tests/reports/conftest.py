"""Fixture run directories built from synthetic data with known truth."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

# Make the repository root importable even when the package is not installed.
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MIB = 1024 * 1024
SLO = {"delivery_p99_ms": 1000.0, "error_rate": 0.01, "generator_cpu_percent": 90.0}
# Deterministic "measurement noise" in bytes, one per step.
NOISE = (3000.0, -2500.0, 1500.0, -3500.0, 2000.0, -500.0)

# Per transport: true memory model, connections per valid step, p99 and error rate per step,
# and the expected capacity at SLO (connections, users).
TRUTH: dict[str, dict[str, Any]] = {
    "poll": {"slope": 2048.0, "base": 45 * MIB, "conns": [100, 200, 400, 800, 1600, 3200],
             "p99": [600, 650, 700, 800, 900, 950], "err": [0.0] * 6, "capacity": (3200, 3200)},
    "sse": {"slope": 20480.0, "base": 50 * MIB, "conns": [100, 200, 400, 800, 1600, 3200],
            "p99": [20, 25, 30, 60, 400, 1500], "err": [0.0] * 6, "capacity": (1600, 1600)},
    "ws": {"slope": 8192.0, "base": 40 * MIB, "conns": [150, 300, 600, 1200, 2400, 4800],
           "p99": [10, 12, 15, 20, 40, 80], "err": [0, 0, 0, 0, 0.002, 0.05], "capacity": (2400, 2400)},
}
# sse gets one more step that the generator could not drive: it must not count anywhere.
INVALID = {"transport": "sse", "step": 6, "users": 6400, "connections": 6400.0,
           "rss": 50 * MIB + 40000.0 * 6400, "p99": 50.0}


def step_row(transport: str, step: int, users: int, connections: float, rss: float,
             p99: float, error_rate: float = 0.0, valid: bool = True, flags: str = "") -> dict[str, Any]:
    """One complete steps.csv row with plausible derived columns."""
    push = transport != "poll"
    duration = 30.0
    requests = users * (10 if not push else 1)
    delivered = users * 30
    return {
        "transport": transport, "step": step, "users": users, "connections": connections,
        "t_start": 1_700_000_000 + 100 * step, "t_end": 1_700_000_000 + 100 * step + duration,
        "duration_s": duration, "requests": requests, "rps": requests / duration,
        "delivered": delivered, "msgs_per_s": delivered / duration,
        "latency_p50_ms": p99 / 4, "latency_p95_ms": p99 / 1.5, "latency_p99_ms": p99,
        "latency_max_ms": p99 * 1.2, "latency_mean_ms": p99 / 3,
        "connect_p50_ms": 1.0, "connect_p99_ms": 5.0,
        "errors": int(round(error_rate * requests)), "error_rate": error_rate,
        "lost": 1 if step == 5 else 0, "duplicated": 0, "reordered": 2 if step == 5 else 0,
        "bytes_received": delivered * (300 if not push else 120), "bytes_sent": requests * 80,
        "bytes_per_event": 300.0 if not push else 120.0,
        "rss_bytes": rss, "uss_bytes": rss - 10 * MIB, "cpu_percent": 5 + users / 100,
        "sockstat_tcp_mem_bytes": 4096.0 * connections,
        "generator_cpu_percent": 98.0 if not valid else 40.0,
        "flags": flags, "valid": valid,
    }


def truth_steps() -> pd.DataFrame:
    """The fixture steps.csv content."""
    rows = []
    for transport, t in TRUTH.items():
        for i, conns in enumerate(t["conns"]):
            rss = t["base"] + t["slope"] * conns + NOISE[i]
            rows.append(step_row(transport, i, conns, float(conns), rss, t["p99"][i], t["err"][i]))
    bad = INVALID
    rows.append(step_row(bad["transport"], bad["step"], bad["users"], bad["connections"], bad["rss"],
                         bad["p99"], valid=False, flags="generator_saturated"))
    return pd.DataFrame(rows)


def samples_for(steps: pd.DataFrame) -> pd.DataFrame:
    """A few target and generator samples per step."""
    rows = []
    for _, s in steps.iterrows():
        for k in range(3):
            t = s["t_start"] + 10 * k
            for role in ("target", "generator"):
                rows.append({
                    "t": t, "elapsed_s": t - 1_700_000_000, "transport": s["transport"], "role": role,
                    "pid": 100 if role == "target" else 200,
                    "rss_bytes": s["rss_bytes"] if role == "target" else 80 * MIB,
                    "uss_bytes": s["uss_bytes"] if role == "target" else 70 * MIB,
                    "cpu_percent": s["cpu_percent"] if role == "target" else s["generator_cpu_percent"],
                    "num_fds": s["connections"] + 20, "tcp_established": s["connections"],
                    "sockstat_tcp_inuse": s["connections"] * 2,
                    "sockstat_tcp_mem_bytes": s["sockstat_tcp_mem_bytes"],
                    "step": s["step"], "phase": "measure"})
    return pd.DataFrame(rows)


def meta_for(name: str, transports: list[str]) -> dict[str, Any]:
    """A complete meta.json."""
    return {
        "tool": "rtcap", "version": "0.1.0", "git_sha": "abc1234",
        "host": {"hostname": "bench-1", "cpus": 8, "platform": "Linux-6.1-x86_64", "python": "3.11.7"},
        "target": {"kind": "reference", "url": "http://127.0.0.1:8000", "rate": 1.0, "payload": 64},
        "transports": transports, "steps": [100, 200, 400, 800, 1600, 3200], "hold_s": 30.0,
        "options": {}, "slo": dict(SLO),
        "start": "2024-05-01T10:00:00+00:00", "end": "2024-05-01T10:40:00+00:00", "name": name,
    }


def write_run(root: Path, name: str, steps: pd.DataFrame, meta: dict[str, Any] | None = None,
              samples: pd.DataFrame | None = None) -> Path:
    """Write a run directory the way the `run` stage does and return its path."""
    run_dir = root / "runs" / name
    run_dir.mkdir(parents=True)
    meta = meta if meta is not None else meta_for(name, list(dict.fromkeys(steps["transport"])))
    (run_dir / "meta.json").write_text(json.dumps(meta, indent=2))
    steps.to_csv(run_dir / "steps.csv", index=False)
    (samples if samples is not None else samples_for(steps)).to_csv(run_dir / "samples.csv", index=False)
    return run_dir


@pytest.fixture
def truth() -> dict[str, dict[str, Any]]:
    """Known per-transport truth behind the fixture run."""
    return {"transports": TRUTH, "invalid": INVALID, "slo": SLO, "noise": NOISE}


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., Path]:
    """Factory writing a run directory from a steps frame (defaults to the truth data)."""
    def make(name: str = "baseline", steps: pd.DataFrame | None = None, **kw: Any) -> Path:
        return write_run(tmp_path, name, truth_steps() if steps is None else steps, **kw)
    return make


@pytest.fixture
def run_dir(make_run: Callable[..., Path]) -> Path:
    """The main fixture run: poll, sse (with one invalid step) and ws."""
    return make_run("baseline")


@pytest.fixture
def second_run_dir(make_run: Callable[..., Path]) -> Path:
    """A second run with 10% more memory everywhere, to overlay with the first."""
    steps = truth_steps()
    steps["rss_bytes"] *= 1.1
    return make_run("tuned", steps)


@pytest.fixture(scope="session")
def rendered_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(run_dir, report.html) rendered once per session: the page embeds ~5 MB of plotly.js."""
    from reports.html import render_report

    run = write_run(tmp_path_factory.mktemp("rendered"), "baseline", truth_steps())
    return run, render_report([run], run / "report.html")
