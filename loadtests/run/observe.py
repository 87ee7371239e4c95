"""Turn an adapter's `[process]` section into a probe the sampler can read (or None: not observed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import psutil

from rtcap.loadtests.run.agent_probe import AgentError, AgentProbe
from rtcap.loadtests.run.probes import CgroupProbe, MetricsProbe, ProbeError
from rtcap.loadtests.run.process_probe import ProcessProbe
from rtcap.loadtests.run.sampler import TargetGone
from rtcap.targets.adapter import TargetAdapter


class ObserveError(RuntimeError):
    """The adapter names a process that cannot be found or read."""


def listening_pid(port: int) -> int:
    """The process listening on TCP `port`; the top one when a server's workers share the socket."""
    pids = {c.pid for c in psutil.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid}
    if not pids:
        raise ObserveError(f"no process is listening on TCP port {port} (or it belongs to another user)")
    roots = [pid for pid in pids if psutil.Process(pid).ppid() not in pids]
    return min(roots or pids)


def _port_of(adapter: TargetAdapter, value: Any) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip() == "{port}":
        port = urlsplit(adapter.base_url).port
        if port is None:
            raise ObserveError(f"process.port is {{port}} but base_url {adapter.base_url} has no port")
        return port
    return int(value)


def _scoped(pid: int, scope: str) -> ProcessProbe:
    """A probe of `pid` summing what the adapter's process.scope says is the server."""
    return ProcessProbe(pid, "target", include_children=scope != "port", group=scope == "group")


def probe_for(adapter: TargetAdapter, started_pid: int | None = None) -> Any | None:
    """A probe for the adapter's target process, None when the adapter observes nothing."""
    spec = adapter.process
    try:
        if spec.kind == "none":
            return None
        if spec.kind == "started":
            if started_pid is None:
                raise ObserveError("the target is observed as the process rtcap starts, but none was started")
            return _scoped(started_pid, spec.scope)
        if spec.kind == "pid":
            return _scoped(int(spec.value), spec.scope)
        if spec.kind == "pidfile":
            text = Path(str(spec.value)).read_text().strip()
            return _scoped(int(text.split()[0]), spec.scope)
        if spec.kind == "port":
            return _scoped(listening_pid(_port_of(adapter, spec.value)), spec.scope)
        if spec.kind == "cgroup":
            return CgroupProbe(str(spec.value))
        if spec.kind == "metrics":
            return MetricsProbe(urljoin(adapter.base_url + "/", str(spec.value).lstrip("/")))
        if spec.kind == "agent":  # a server on another host, read by `rtcap agent` beside it
            return AgentProbe(str(spec.value))
    except (OSError, ValueError, psutil.Error, ProbeError, AgentError, TargetGone) as error:
        raise ObserveError(f"process.{spec.kind} = {spec.value!r}: {error}") from error
    raise ObserveError(f"unknown process kind {spec.kind!r}")


def describe(adapter: TargetAdapter) -> str:
    """How the target is observed, in words, for tables and reports."""
    spec = adapter.process
    scope = {"tree": " and its children", "group": " with its whole process group",
             "port": " alone (process.scope = \"port\")"}.get(spec.scope, "")
    return {
        "none": "not observed: client-side figures only, memory per connection unavailable",
        "started": f"the process rtcap starts{scope}",
        "pid": f"pid {spec.value}{scope}",
        "pidfile": f"the pid in {spec.value}{scope}",
        "port": f"the process listening on port {spec.value}{scope}",
        "cgroup": f"cgroup {spec.value}",
        "metrics": f"Prometheus process metrics at {spec.value}",
        "agent": f"through rtcap agent at {spec.value}",
    }.get(spec.kind, spec.kind)
