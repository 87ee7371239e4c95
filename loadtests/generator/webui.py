"""A "Capacity" tab in Locust's web UI: live delivery latency, throughput, generator lag, target memory vs
connections with its running slope, and threshold status, per transport, refreshed with Locust's own stats.

Locust's web UI polls /stats/requests every few seconds; its `extended_stats` carry this tab's rows (the
mechanism Locust's extend_web_ui example documents). Figures come from the recorder's merged per-second
rows (the master's, in a distributed run) over the last WINDOW_S seconds. With `--target-pid PID` the
process serving the target is sampled every second (psutil) and the tab shows its RSS and the running
least-squares slope of RSS against the connections it holds.

The web UI and the master bind to loopback unless told otherwise. A web UI bound elsewhere without
--web-login gets a warning that anyone who can reach the port can start load from this machine; a master bound
elsewhere always gets one, since its worker port has no authentication at all. With --web-login, rtcap's
routes are behind the same login as Locust's. When a test stops, its HTML report is linked from the
"Download Data" tab (loadtests/generator/webui_report.py).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from typing import Any

import gevent
import numpy as np
from locust import events
from locust.runners import MasterRunner, WorkerRunner

from rtcap.loadtests.generator import hooks, webui_report
from rtcap.loadtests.generator.options import Settings
from rtcap.loadtests.run.collect import GENERATOR, step_row
from rtcap.loadtests.run.process_probe import ProcessProbe
from rtcap.loadtests.run.sampler import Sample, read_sockstat
from rtcap.targets.reference.access import is_loopback

logger = logging.getLogger(__name__)
TAB_KEY = "rtcap-capacity"
WINDOW_S = 10
COLUMNS = [
    ("transport", "Transport"), ("connections", "Connections"), ("msgs_per_s", "Messages/s"),
    ("rps", "Requests/s"), ("p50", "Delivery p50 (ms)"), ("p95", "Delivery p95 (ms)"), ("p99", "Delivery p99 (ms)"),
    ("errors", "Errors"), ("lost", "Lost"), ("lag_p99", "Generator lag p99 (ms)"),
    ("target_rss", "Target RSS (MiB)"), ("slope", "Memory per connection (KiB, running)"),
    ("thresholds", "Thresholds"),
]


@events.init_command_line_parser.add_listener
def add_arguments(parser: Any) -> None:
    """Loopback defaults for the web UI and the master (--target-pid is declared in loadtests/options.py)."""
    # Safe defaults: nothing listens beyond this machine unless asked to.
    parser.set_defaults(web_host="127.0.0.1", master_bind_host="127.0.0.1")


class TargetWatch:
    """Samples one process each second (psutil): RSS, CPU, established TCP connections."""

    def __init__(self, pid: int) -> None:
        self.probe = ProcessProbe(pid, "target")
        self.samples: list[Sample] = []
        self._greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        while True:
            try:
                sample = self.probe.read(read_sockstat())
            except Exception as error:  # noqa: BLE001  (the target went away: stop sampling, keep what we have)
                logger.warning("rtcap: stopped sampling the target: %s", error)
                return
            self.samples.append(sample)
            del self.samples[:-3600]
            gevent.sleep(1.0)

    def latest_rss(self) -> int | None:
        """The last RSS sampled."""
        return self.samples[-1].rss_bytes if self.samples else None

    def slope(self) -> float | None:
        """Least-squares RSS bytes per connection over the samples so far (needs 3 distinct counts)."""
        counts = [s.tcp_established or 0 for s in self.samples]
        if len(set(counts)) < 3:
            return None
        rss = np.array([s.rss_bytes for s in self.samples], dtype=float)
        return float(np.polyfit(np.array(counts, dtype=float), rss, 1)[0])


_watches: dict[int, TargetWatch] = {}


def _shown(host: str) -> str:
    return "all interfaces" if host in ("", "*", "0.0.0.0", "::") else repr(host)


def exposure_warnings(options: Any, web_ui: bool, master: bool) -> list[str]:
    """Why this process can be driven from another machine: a web UI without login, a master's worker port."""
    out = []
    web_host = getattr(options, "web_host", "127.0.0.1")
    if web_ui and not is_loopback(web_host) and not getattr(options, "web_login", False):
        out.append(f"rtcap: the web UI listens on {_shown(web_host)} without --web-login: anyone who can reach it "
                   "can start load from this machine")
    bind = getattr(options, "master_bind_host", "127.0.0.1")
    if master and not is_loopback(bind):
        port = getattr(options, "master_bind_port", 5557)
        out.append(f"rtcap: the master listens for workers on {_shown(bind)} port {port} (--master-bind-host), "
                   "which has no authentication: anyone who can reach it can join as a worker, receive the "
                   "test's options and corrupt its results")
    return out


def capacity_rows(environment: Any, now: float | None = None) -> list[dict[str, Any]]:
    """The tab's rows: one per transport, over the last WINDOW_S whole seconds."""
    from rtcap.loadtests.generator import gate_hooks

    now = time.time() if now is None else now
    end = int(now)
    rows = hooks.live_rows(environment, since=end - WINDOW_S - 1)
    window = {"step": 0, "users": 1, "t_start": end - WINDOW_S, "t_end": end}
    watch = _watches.get(id(environment))
    outcomes = gate_hooks.live_outcomes(environment)
    out = []
    for transport in sorted({r["transport"] for r in rows} - {GENERATOR}):
        row = step_row(transport, window, rows, [])
        mine = [o for o in outcomes if o.threshold.transport == transport]

        def ms(value: float | None) -> float | None:
            return None if value is None else round(value, 1)

        out.append({
            "transport": transport, "connections": row["connections"], "msgs_per_s": round(row["msgs_per_s"], 1),
            "rps": round(row["rps"], 1), "p50": ms(row["latency_p50_ms"]), "p95": ms(row["latency_p95_ms"]),
            "p99": ms(row["latency_p99_ms"]), "errors": row["errors"], "lost": row["lost"],
            "lag_p99": ms(row["generator_lag_p99_ms"]),
            "target_rss": None if watch is None or watch.latest_rss() is None else round(watch.latest_rss() / 2**20, 1),
            "slope": None if watch is None or watch.slope() is None else round(watch.slope() / 1024, 1),
            "thresholds": f"{sum(o.ok for o in mine)} of {len(mine)} met" if mine else "",
        })
    return out


@events.init.add_listener
def on_init(environment: Any, **_kwargs: Any) -> None:
    """Add the Capacity tab (where a web UI runs) and warn about a web UI or master reachable from elsewhere."""
    options = getattr(environment, "parsed_options", None)
    web_ui = getattr(environment, "web_ui", None)
    if options is None or isinstance(environment.runner, WorkerRunner):
        return
    for warning in exposure_warnings(options, web_ui is not None, isinstance(environment.runner, MasterRunner)):
        logger.warning(warning)
    if web_ui is None:
        return
    if not getattr(options, "rtcap_record", ""):
        options.rtcap_record = tempfile.mkdtemp(prefix="rtcap-webui-")  # the tab reads the recorder's rows
    pid = Settings.of(environment).target_pid
    if pid:
        _watches[id(environment)] = TargetWatch(pid)
    web_ui.template_args["extended_tabs"] = [{"title": "Capacity", "key": TAB_KEY}]
    web_ui.template_args["extended_tables"] = [
        {"key": TAB_KEY, "structure": [{"key": key, "title": title} for key, title in COLUMNS]}]
    watch = _watches.get(id(environment))
    webui_report.install(environment, web_ui, lambda: list(watch.samples) if watch is not None else [])

    @web_ui.app.after_request
    def add_capacity(response: Any) -> Any:
        from flask import request

        if request.path != "/stats/requests" or response.status_code != 200:
            return response
        stats = response.get_json(silent=True)
        if not isinstance(stats, dict):  # e.g. --web-login's login page or error text: not ours to extend
            return response
        extended = [{"key": TAB_KEY, "data": capacity_rows(environment)}]
        response.set_data(json.dumps({**stats, "extended_stats": extended}))
        return response
