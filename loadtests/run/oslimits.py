"""The operating system's limits a sweep would run into, checked before any load: a run that cannot hold its
largest step is refused with the numbers and the fix, instead of failing half way with EMFILE or
EADDRNOTAVAIL charged to the target.

- open files (RLIMIT_NOFILE): every held connection is one descriptor in the generator process holding it and
  one in the target (validate.preflight_open_files raises the soft limit to what the step needs);
- ephemeral ports (net.ipv4.ip_local_port_range): a source address reaches one destination ip:port from at
  most that many local ports, so the largest step is spread over --source-ips;
- the listen backlog (net.core.somaxconn) of a target rtcap starts: it caps the connections the target has
  not accepted yet, so it must hold what arrives at once (a spawn's worth), not the whole step;
- the target's own open-file limit (/proc/PID/limits) once rtcap started it: its start command may lower it.

Each check returns None or raises LimitRefused, whose message is one line; the orchestrator (validate.py,
sweep.py) turns it into its refusal. Linux figures; where /proc is absent, the checks that need it pass.
"""

from __future__ import annotations

import resource
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rtcap.targets.transports import lookup

PROC = Path("/proc")
FD_MARGIN = 100
"""Descriptors a process needs besides its users' sockets: interpreter, logs, pipes, /proc reads, listeners."""
"""(validate.open_files_needed adds it too.)"""
PORT_MARGIN = 100
"""Local ports a box needs besides the users' connections: the orchestrator's checks, publishes and health probes."""


class LimitRefused(ValueError):
    """The run would exceed a limit of this machine; the message is one line with the numbers and the fix."""


@dataclass(frozen=True)
class HostLimits:
    """This machine's limits as a sweep meets them (None: unlimited, or not readable here)."""

    open_files_soft: int | None
    open_files_hard: int | None
    ports: tuple[int, int] | None
    somaxconn: int | None

    @property
    def port_count(self) -> int | None:
        """Ephemeral ports one source address has towards one destination."""
        return None if self.ports is None else self.ports[1] - self.ports[0] + 1


def _limit(value: int) -> int | None:
    return None if value == resource.RLIM_INFINITY else value


def _read_ints(path: Path) -> list[int] | None:
    try:
        return [int(word) for word in path.read_text(encoding="ascii").split()]
    except (OSError, ValueError):
        return None


def read_host_limits(proc: Path = PROC) -> HostLimits:
    """The limits of this process and machine, as oslimits' checks use them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ports = _read_ints(proc / "sys/net/ipv4/ip_local_port_range")
    backlog = _read_ints(proc / "sys/net/core/somaxconn")
    return HostLimits(_limit(soft), _limit(hard), (ports[0], ports[1]) if ports and len(ports) == 2 else None,
                      backlog[0] if backlog else None)


def process_open_files(pid: int, proc: Path = PROC) -> int | None:
    """The soft open-file limit of process `pid` (None: unlimited or unreadable)."""
    try:
        text = (proc / str(pid) / "limits").read_text(encoding="ascii")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Max open files"):
            soft = line[len("Max open files"):].split()[0]
            return None if soft == "unlimited" else int(soft)
    return None


def connections_per_user(transports: Sequence[str]) -> int:
    """Connections the most connection-hungry of `transports` holds per user (a polling viewer keeps one
    keep-alive connection, a signalling user a WebSocket and a fetch connection)."""
    return max((lookup(t).connections_per_user for t in transports), default=1)


def check_ports(steps: Sequence[int], transports: Sequence[str], sources: int, limits: HostLimits) -> None:
    """Refuse a largest step whose connections per source address exceed the ephemeral port range.

    All of one box's generator processes share its ports; with --source-ips each address has its own range.
    (A connection bound to a source address takes a port of that address whatever its destination.)
    """
    ports = limits.port_count
    if ports is None:
        return
    connections = max(steps, default=0) * connections_per_user(transports)
    per_source = -(-connections // max(1, sources))
    if per_source + PORT_MARGIN <= ports:
        return
    assert limits.ports is not None
    low, high = limits.ports
    wanted = -(-(connections + PORT_MARGIN * max(1, sources)) // ports)
    raise LimitRefused(
        f"--steps: the largest step opens {connections:,} connections, {per_source:,} per source address, but "
        f"net.ipv4.ip_local_port_range {low} {high} gives each source address {ports:,} ports (less {PORT_MARGIN} "
        f"for rtcap's own); spread them with --source-ips (at least {wanted} addresses, e.g. "
        f"127.0.0.2-127.0.0.{wanted + 1} on loopback), widen the range (sysctl -w "
        f"net.ipv4.ip_local_port_range='1024 65535') or lower --steps")


def check_backlog(steps: Sequence[int], transports: Sequence[str], spawn_rate: float, limits: HostLimits) -> None:
    """Refuse a spawn burst larger than net.core.somaxconn for a target rtcap starts.

    The backlog caps connections a server has not accepted yet; past it the kernel drops SYNs, which retry a
    second later and turn into connect times the target never caused. Users start `spawn_rate` per second.
    """
    if limits.somaxconn is None:
        return
    burst = int(min(max(steps, default=0), spawn_rate) * connections_per_user(transports))
    if burst <= limits.somaxconn:
        return
    raise LimitRefused(
        f"--spawn-rate: up to {burst:,} connections arrive at the target at once, but net.core.somaxconn is "
        f"{limits.somaxconn:,}, so the kernel would drop the rest and delay their connects; raise it (sysctl -w "
        f"net.core.somaxconn={burst}) or lower --spawn-rate to {limits.somaxconn:,}")


def check_target_open_files(pid: int, steps: Sequence[int], transports: Sequence[str], proc: Path = PROC) -> None:
    """Refuse a largest step the target process `pid` cannot hold under its own open-file limit."""
    limit = process_open_files(pid, proc)
    need = max(steps, default=0) * connections_per_user(transports) + FD_MARGIN
    if limit is None or need <= limit:
        return
    raise LimitRefused(
        f"--steps: the target (pid {pid}) may open {limit:,} files but the largest step needs about {need:,}; "
        f"raise its limit where it is started (ulimit -n {need} before its start command, LimitNOFILE={need} in "
        "its systemd unit) or lower --steps")


def largest_step(limits: HostLimits, transports: Sequence[str], processes: int = 1, sources: int = 1,
                 starts_target: bool = True) -> int:
    """The most users one step may have on this machine under its hard open-file limit and its ports."""
    per_user = connections_per_user(transports)
    bounds = []
    if limits.open_files_hard is not None:
        files = limits.open_files_hard - FD_MARGIN
        bounds.append(files // per_user * (1 if starts_target else max(1, processes)))
    if limits.port_count is not None:
        bounds.append((limits.port_count - PORT_MARGIN) * max(1, sources) // per_user)
    return max(0, min(bounds)) if bounds else 0
