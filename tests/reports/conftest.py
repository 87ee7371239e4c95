"""Fixture run directories built from synthetic data with known truth."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

# Make the repository root importable even when the package is not installed.
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MIB = 1024 * 1024
SLO = {"delivery_p99_ms": 1000.0, "error_rate": 0.01, "generator_cpu_percent": 90.0,
       "generator_lag_p99_ms": 100.0}
# Deterministic "measurement noise" in bytes, one per step.
NOISE = (3000.0, -2500.0, 1500.0, -3500.0, 2000.0, -500.0)

# Per transport: true memory model, connections per valid step, p99 and error rate per step,
# the expected capacity at SLO (connections, users) and how many steps the memory fit uses.
TRUTH: dict[str, dict[str, Any]] = {
    "poll": {"slope": 2048.0, "base": 45 * MIB, "conns": [100, 200, 400, 800, 1600, 3200],
             "p99": [600, 650, 700, 800, 900, 950], "err": [0.0] * 6, "capacity": (3200, 3200),
             "fit_points": 6},
    "sse": {"slope": 20480.0, "base": 50 * MIB, "conns": [100, 200, 400, 800, 1600, 3200],
            "p99": [20, 25, 30, 60, 400, 1500], "err": [0.0] * 6, "capacity": (1600, 1600),
            "fit_points": 6},
    "ws": {"slope": 8192.0, "base": 40 * MIB, "conns": [150, 300, 600, 1200, 2400, 4800],
           "p99": [10, 12, 15, 20, 40, 80], "err": [0, 0, 0, 0, 0.002, 0.05], "capacity": (2400, 2400),
           "fit_points": 5},  # one step's memory never settled
    # Full-state polling: the whole state on every poll (the live-scores anti-pattern).
    "state": {"slope": 4096.0, "base": 42 * MIB, "conns": [100, 200, 400, 800, 1600],
              "p99": [900, 950, 1000, 1200, 1500], "err": [0.0] * 5, "capacity": (400, 400),
              "fit_points": 5},
}
POLLING = ("poll", "state")
# Per transport wire model: bytes received per delivered event, bytes sent per request, and
# application payload per delivered event. Every user gets 30 events and sends 10 polls (1 request
# for push) per 30 s window, so per client over 5 min: wire = 10 * (30 * recv + requests * sent).
WIRE = {"poll": (300, 90, 100), "sse": (120, 300, 70), "ws": (110, 300, 66), "state": (2400, 90, 2000)}
# sse gets one more step that the generator could not drive: it must not count anywhere.
INVALID = {"transport": "sse", "step": 6, "users": 6400, "connections": 6400.0,
           "rss": 50 * MIB + 40000.0 * 6400, "p99": 50.0}
# state gets one step where the generator's event loop lagged: invalid, with many missed ticks.
LAGGING = {"transport": "state", "step": 5, "users": 3200, "connections": 3200.0,
           "rss": 42 * MIB + 4096.0 * 3200, "p99": 2000.0, "lag_p99": 250.0, "missed": 40}
# A valid ws step whose memory never settled: 16 MiB off the line, it must stay out of the fit.
UNSETTLED = {"transport": "ws", "step": 3, "extra_rss": 16 * MIB}
MISSED = {"state": [0, 0, 0, 3, 10]}  # polls that missed their tick, per valid step
NEW_COLUMNS = ("payload_bytes", "bytes_per_client_5min", "payload_per_client_5min",
               "overhead_per_client_5min", "missed_ticks", "request_p50_ms", "request_p99_ms",
               "generator_lag_p99_ms", "generator_lag_max_ms", "settle_s", "settled")


def step_row(transport: str, step: int, users: int, connections: float, rss: float,
             p99: float, error_rate: float = 0.0, valid: bool = True, flags: str = "",
             missed: int = 0, lag_p99: float = 2.0, wire_scale: float = 1.0,
             settled: bool = True) -> dict[str, Any]:
    """One complete steps.csv row (new columns included) with plausible derived columns."""
    push = transport not in POLLING
    duration = 30.0
    requests = users * (10 if not push else 1)
    delivered = users * 30
    recv, sent, payload = WIRE[transport]
    received, sent_bytes = delivered * recv * wire_scale, requests * sent
    payload_bytes = delivered * payload * wire_scale
    per_client = 300.0 / users / duration  # what the collect stage scales a window's bytes by
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
        "bytes_received": received, "bytes_sent": sent_bytes,
        "bytes_per_event": (received + sent_bytes) / delivered,
        "rss_bytes": rss, "uss_bytes": rss - 10 * MIB, "cpu_percent": 5 + users / 100,
        "sockstat_tcp_mem_bytes": 4096.0 * connections,
        "generator_cpu_percent": 98.0 if "generator_saturated" in flags else 40.0,
        "flags": flags, "valid": valid,
        "payload_bytes": payload_bytes,
        "bytes_per_client_5min": (received + sent_bytes) * per_client,
        "payload_per_client_5min": payload_bytes * per_client,
        "overhead_per_client_5min": (received + sent_bytes - payload_bytes) * per_client,
        "missed_ticks": missed,
        "request_p50_ms": 3.0 if not push else None, "request_p99_ms": 12.0 if not push else None,
        "generator_lag_p99_ms": lag_p99, "generator_lag_max_ms": lag_p99 * 4,
        "settle_s": 5.0 if settled else 30.0, "settled": "true" if settled else "false",
    }


def truth_steps(modern: bool = True) -> pd.DataFrame:
    """The fixture steps.csv content; modern=False is a run from before the new columns.

    The old format has no new columns, no state transport and no memory_unsettled step.
    """
    rows = []
    for transport, t in TRUTH.items():
        if transport == "state" and not modern:
            continue
        for i, conns in enumerate(t["conns"]):
            rss = t["base"] + t["slope"] * conns + NOISE[i]
            unsettled = modern and (transport, i) == (UNSETTLED["transport"], UNSETTLED["step"])
            rows.append(step_row(transport, i, conns, float(conns),
                                 rss + (UNSETTLED["extra_rss"] if unsettled else 0.0), t["p99"][i],
                                 t["err"][i], flags="memory_unsettled" if unsettled else "",
                                 missed=MISSED.get(transport, [0] * 6)[i], settled=not unsettled))
    bad = INVALID
    # The saturated generator also miscounted bytes: a median over valid steps must not see them.
    rows.append(step_row(bad["transport"], bad["step"], bad["users"], bad["connections"], bad["rss"],
                         bad["p99"], valid=False, flags="generator_saturated", lag_p99=30.0,
                         wire_scale=3.0))
    if modern:
        lag = LAGGING
        rows.append(step_row(lag["transport"], lag["step"], lag["users"], lag["connections"],
                             lag["rss"], lag["p99"], valid=False, flags="generator_lagging",
                             missed=lag["missed"], lag_p99=lag["lag_p99"], wire_scale=0.5))
    frame = pd.DataFrame(rows)
    return frame if modern else frame.drop(columns=list(NEW_COLUMNS))


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
    return {"transports": TRUTH, "invalid": INVALID, "lagging": LAGGING, "unsettled": UNSETTLED,
            "missed": MISSED, "slo": SLO, "noise": NOISE}


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., Path]:
    """Factory writing a run directory from a steps frame (defaults to the truth data)."""
    def make(name: str = "baseline", steps: pd.DataFrame | None = None, **kw: Any) -> Path:
        return write_run(tmp_path, name, truth_steps() if steps is None else steps, **kw)
    return make


@pytest.fixture
def run_dir(make_run: Callable[..., Path]) -> Path:
    """The main fixture run: poll, sse (one saturated step), ws (one unsettled step), state (one lagging)."""
    return make_run("baseline")


@pytest.fixture
def old_run_dir(make_run: Callable[..., Path]) -> Path:
    """A run written before payload, missed ticks, generator lag and settling were recorded."""
    return make_run("old", truth_steps(modern=False))


@pytest.fixture
def second_run_dir(make_run: Callable[..., Path]) -> Path:
    """A second run with 10% more memory everywhere, to overlay with the first."""
    steps = truth_steps()
    steps["rss_bytes"] *= 1.1
    return make_run("tuned", steps)


@pytest.fixture(scope="session")
def rendered_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(run_dir, report.html) rendered once per session: the page embeds ~5 MB of plotly.js."""
    from rtcap.reports.html import render_report

    run = write_run(tmp_path_factory.mktemp("rendered"), "baseline", truth_steps())
    return run, render_report([run], run / "report.html")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium for a test module (tests/reports/browser.py; mark tests needs_browser)."""
    from tests.reports.browser import Browser

    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield b
    finally:
        b.close()
