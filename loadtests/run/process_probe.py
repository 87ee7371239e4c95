"""Reads a target's processes with psutil: one process, it and its descendants, its process group, or a cgroup's
processes, summed and (for a deployment of several processes) one sample per member. Their TCP sockets are read
once per tick for all members through sockets.py (the kernel's sock_diag), with psutil where that is refused."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from rtcap.loadtests.run.sampler import PSUTIL, Sample, TargetGone
from rtcap.loadtests.run.sockets import NetlinkUnavailable, listening_and_internal, read_tcp, split_connections
from rtcap.reports.schema import member_role


class ProcessProbe:
    """Reads one process, or it and all its descendants summed (servers that fork a worker or a process per
    connection); CPU percent is measured between two consecutive reads (100 = one core).

    Connections are the established TCP sockets whose local port is one the process (or a descendant)
    listens on: what clients opened to it. Its outgoing sockets are counted apart (`tcp_outgoing`), and a
    socket shared by several processes (a forked worker inheriting it) counts once. The sockets of every member
    are read in one go per tick (sockets.read_tcp); where netlink is refused, psutil's per-process
    `net_connections`, with the same counts.
    """

    source = PSUTIL
    main_required = True
    """The first member's exit ends the probe (TargetGone); a probe of a set of peers (a cgroup) says False."""

    def __init__(self, pid: int, role: str, count_connections: bool = True, include_children: bool = False,
                 per_process: bool = False, group: bool = False, shares: bool | None = None) -> None:
        self.process = psutil.Process(pid)
        self.per_process = per_process
        self.role = role
        self.count_connections = count_connections
        self.include_children = include_children
        self.group = os.getpgid(pid) if group else None
        """With `group`, every process of the observed one's process group (and their descendants) is summed."""
        self.shares = (include_children or group) if shares is None else shares
        """With several members, `read_all` adds each member's own sample (role "target:worker", ...) to the sum."""
        self._known: dict[int, psutil.Process] = {}
        self.netlink = True
        """Whether sockets are read with sock_diag; False once it was refused (and for a psutil-only reading)."""
        self._track(self.process)

    def _track(self, process: psutil.Process) -> psutil.Process:
        known = self._known.get(process.pid)
        if known is None:
            known = self._known[process.pid] = process
            known.cpu_percent(None)  # prime: the first call has no interval to measure against
        return known

    def _members(self) -> list[psutil.Process]:
        if not self.include_children and self.group is None:
            return [self.process]
        members = [self.process] + [self._track(child) for child in self.process.children(recursive=True)]
        if self.group is not None:
            members += [self._track(other) for other in _group_members(self.group, {m.pid for m in members})]
        alive = {member.pid for member in members}
        self._known = {pid: proc for pid, proc in self._known.items() if pid in alive}
        return members

    def members(self) -> list[tuple[int, str, int]]:
        """(pid, name, RSS bytes) of every process this probe sums, for people to check what is counted."""
        out = []
        for process in self._members():
            try:
                out.append((process.pid, process.name(), process.memory_info().rss))
            except psutil.Error:
                continue
        return out

    def _readings(self) -> list[_Reading]:
        """One reading of every member, each read once (CPU percent is measured since the previous read), their
        sockets in one read for all of them."""
        read = []
        for index, process in enumerate(self._members()):
            try:
                read.append((process, index == 0, _alive(process), *_read_one(process)))
            except psutil.NoSuchProcess:
                if index == 0 and self.main_required:
                    raise
                continue  # a member that exited (or is a zombie) between listing and reading
        conns: dict[int, list[Any] | None] = {}
        if self.count_connections:
            conns = self._connections([one[0] for one in read])
        readings = []
        for process, main, *figures in read:
            if self.count_connections and process.pid not in conns:  # exited while its sockets were read
                if main and self.main_required:
                    raise psutil.NoSuchProcess(process.pid)
                continue
            readings.append(_Reading(process, main, *figures, conns.get(process.pid)))
        return readings

    def _connections(self, processes: list[psutil.Process]) -> dict[int, list[Any] | None]:
        """pid -> the TCP sockets of each process (None: not permitted to read them); a process that exited
        meanwhile is left out."""
        if self.netlink:
            try:
                holdings = read_tcp([process.pid for process in processes])
                return {pid: conns for pid, conns in holdings.conns.items() if pid not in holdings.gone}
            except NetlinkUnavailable:
                self.netlink = False  # refused once, refused for good: psutil from now on
        out: dict[int, list[Any] | None] = {}
        for process in processes:
            try:
                out[process.pid] = process.net_connections(kind="tcp")
            except psutil.AccessDenied:
                out[process.pid] = None
            except psutil.NoSuchProcess:
                continue
        return out

    def read_each(self, sockstat: tuple[int | None, int | None]) -> list[Sample]:
        """One sample per member process (the process and, with include_children, each descendant)."""
        samples = []
        for one in self._readings():
            inbound, outgoing = split_connections(one.conns)
            samples.append(one.sample(self.role, inbound, outgoing, sockstat, self.source))
        return samples

    def read(self, sockstat: tuple[int | None, int | None]) -> Sample:
        """Take one sample (raises psutil.Error if the main process is gone)."""
        return self._summed(self._readings(), sockstat)

    def read_all(self, sockstat: tuple[int | None, int | None]) -> list[Sample]:
        """The summed sample, then, with `shares` and more than one member, one sample per member whose role says
        what it is (`member_kind`: "target:worker", "target:broker", "target:supervisor"), so a report can split
        memory, CPU and connections between a deployment's workers and its broker. The members' samples come
        from the same readings as the sum: a process is never read twice in one tick."""
        readings = self._readings()
        summed = self._summed(readings, sockstat)
        if not self.shares or len(readings) < 2:
            return [summed]
        listening, internal = listening_and_internal([one.conns for one in readings])
        shares = []
        for one in readings:
            inbound, outgoing = split_connections(one.conns, listening, internal)
            role = member_role(member_kind(one.process, one.main and self.main_required))
            shares.append(one.sample(role, inbound, outgoing, sockstat, self.source))
        return [summed, *shares]

    def _summed(self, readings: list[_Reading], sockstat: tuple[int | None, int | None]) -> Sample:
        states = [one.state for one in readings if one.main or not self.main_required]
        if not states:
            raise TargetGone(self.pid, msg=f"every process of {self.describe()} exited")
        uss: int | None = 0
        fds: int | None = 0
        conns: list[Any] | None = [] if self.count_connections else None
        for one in readings:
            uss = None if uss is None or one.uss is None else uss + one.uss
            fds = None if fds is None or one.fds is None else fds + one.fds
            if conns is not None:
                conns = None if one.conns is None else conns + one.conns
        inbound, outgoing = split_connections(conns)
        # One frozen member of a set of peers serves nothing: the set reads as stopped.
        state = psutil.STATUS_STOPPED if psutil.STATUS_STOPPED in states else states[0]
        return Sample(time.time(), self.role, self.pid, int(sum(one.rss for one in readings)), uss,
                      sum(one.cpu for one in readings), fds, inbound, *sockstat, tcp_outgoing=outgoing, state=state,
                      source=self.source)

    @property
    def pid(self) -> int:
        """The pid samples carry."""
        return self.process.pid

    def describe(self) -> str:
        """What this probe reads, in words."""
        return f"pid {self.process.pid}"


class CgroupProcsProbe(ProcessProbe):
    """Sums every process of a cgroup v2 directory (its cgroup.procs and those of its child cgroups): a
    deployment of several peer processes (workers plus a broker) that no single parent holds.

    Unlike `probes.CgroupProbe` (the kernel's memory.current, which counts page cache too), this reads each
    process like ProcessProbe, so RSS, USS, fds and inbound connections mean the same as for a pid. No member
    is the main one: the probe is gone (TargetGone) once the cgroup holds no live process. Samples carry pid 0.
    """

    def __init__(self, directory: str | Path, role: str = "target") -> None:
        self.directory = Path(directory)
        if not (self.directory / "cgroup.procs").is_file():
            raise ValueError(f"{self.directory} has no cgroup.procs: not a cgroup directory")
        self.role, self.per_process, self.count_connections, self.shares = role, False, True, True
        self.main_required = False
        self._known: dict[int, psutil.Process] = {}
        self.netlink = True
        self._members()

    @property
    def pid(self) -> int:
        return 0

    def describe(self) -> str:
        return f"cgroup {self.directory}"

    def _members(self) -> list[psutil.Process]:
        pids = set()
        for procs in sorted(self.directory.rglob("cgroup.procs")):
            try:
                pids.update(int(line) for line in procs.read_text().split())
            except OSError:
                continue  # a child cgroup removed while listing
        members = []
        for pid in sorted(pids):
            try:
                members.append(self._known.get(pid) or self._track(psutil.Process(pid)))
            except psutil.NoSuchProcess:
                continue
        if not members:
            raise TargetGone(0, msg=f"cgroup {self.directory} holds no process")
        self._known = {member.pid: member for member in members}
        return members


def _group_members(pgid: int, known: set[int]) -> list[psutil.Process]:
    """The processes of process group `pgid` not in `known`."""
    found = []
    for process in psutil.process_iter():
        if process.pid in known:
            continue
        try:
            if os.getpgid(process.pid) == pgid:
                found.append(process)
        except (ProcessLookupError, PermissionError):
            continue
    return found


def _alive(process: psutil.Process) -> str:
    """The process's status; raises TargetGone for a zombie (killed, its parent has not reaped it yet)."""
    state = process.status()
    if state in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
        raise TargetGone(process.pid, msg=f"process {process.pid} is a zombie: it exited")
    return state


BROKER_NAMES = frozenset({"redis-server", "valkey-server", "keydb-server"})
"""Process names of message brokers a deployment may start beside its workers."""


def member_kind(process: psutil.Process, root: bool) -> str:
    """What one member of a multi-process target is (one of schema.MEMBER_ROLES): a broker by its process name,
    the probed root process (which started the others) the supervisor, any other process a worker."""
    try:
        name = process.name()
    except psutil.Error:
        name = ""
    return "broker" if name in BROKER_NAMES else "supervisor" if root else "worker"


@dataclass(frozen=True)
class _Reading:
    """One member's figures from one read."""

    process: psutil.Process
    main: bool
    state: str
    rss: int
    uss: int | None
    cpu: float
    fds: int | None
    conns: list[Any] | None

    def sample(self, role: str, inbound: int | None, outgoing: int | None,
               sockstat: tuple[int | None, int | None], source: str) -> Sample:
        return Sample(time.time(), role, self.process.pid, self.rss, self.uss, self.cpu, self.fds, inbound, *sockstat,
                      tcp_outgoing=outgoing, state=self.state, source=source)


def _read_one(process: psutil.Process) -> tuple[int, int | None, float, int | None]:
    with process.oneshot():
        cpu = process.cpu_percent(None)
        try:
            full = process.memory_full_info()
            rss, uss = full.rss, getattr(full, "uss", None)
        except psutil.AccessDenied:
            rss, uss = process.memory_info().rss, None
        try:
            fds = process.num_fds()
        except (psutil.AccessDenied, AttributeError):
            fds = None
    return rss, uss, cpu, fds
