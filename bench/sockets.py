"""How long one sampling tick's connection count takes with psutil and with sock_diag (loadtests/run/sockets.py).

    python -m rtcap.bench.sockets                       # 2,000, 8,000 and 15,000 connections: about a minute
    python -m rtcap.bench.sockets --counts 1000,3000    # other sizes

A server listens on 127.0.0.1 and forks 4 workers that accept and hold every connection (5 processes, as a
pre-fork server is); client processes on the same host open the connections, at most 5,000 each (a process may
hold 20,000 descriptors here), so the host's TCP table holds both ends: twice the count. At each size it times
`ProcessProbe(server, include_children=True).read_all()` (one sampling tick: memory, CPU and connections of
the 5 processes) and the connection count alone, with psutil (`net_connections` per member, the fallback) and
with sock_diag, the median of `--repeat` reads, and checks that both count the same. It also times a dump of
every ESTABLISHED and LISTEN socket on the host without a kernel filter, every record parsed (what reading
the table costs when filters do not help), and, with pyroute2 importable (it is not a dependency), pyroute2's
DiagSocket dump of the same records.

Connections are added, never closed between sizes, so no port is left in TIME_WAIT.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from typing import Callable

import psutil

from rtcap.loadtests.run.process_probe import ProcessProbe
from rtcap.loadtests.run.sampler import read_sockstat
from rtcap.loadtests.run import sockets
from rtcap.loadtests.run.sockets import Reading, read_tcp, split_connections

WORKERS = 4
PER_CLIENT = 5000

SERVER = r"""
import os, socket, sys
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(4096)
print(listener.getsockname()[1], flush=True)
for _ in range(int(sys.argv[1])):
    if os.fork() == 0:
        held = []
        while True:
            held.append(listener.accept()[0])
            os.write(1, b"+")
sys.stdin.read()
"""

CLIENT = r"""
import socket, sys
held = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(int(sys.argv[2]))]
print("held", flush=True)
sys.stdin.read()
"""


def _median_seconds(read: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        read()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class _Every(dict):
    """Every inode wanted (named fd -1): a dump that parses every record, as pyroute2's does."""

    def get(self, key: object, default: object = None) -> int:
        return -1


def _full_dump_seconds(repeat: int) -> tuple[float, int]:
    """Seconds of sockets.dump parsing every ESTABLISHED and LISTEN TCP socket of the host (both families, no
    filter): the same records as pyroute2's dump below."""
    count = 0

    def dump() -> None:
        nonlocal count
        sock, found, buffer = sockets.open_netlink(), {}, bytearray(1 << 16)
        try:
            count = sum(sockets.dump(sock, family, sockets.ESTABLISHED | sockets.LISTENING, b"", _Every(), found,
                                     buffer, family) for family in (socket.AF_INET, socket.AF_INET6))
        finally:
            sock.close()

    return _median_seconds(dump, repeat), count


def _time_wait() -> int | None:
    """Sockets in TIME_WAIT on the host: psutil parses their lines too, sock_diag is not asked for them."""
    for line in open("/proc/net/sockstat"):
        if line.startswith("TCP:"):
            fields = line.split()[1:]
            return dict(zip(fields[::2], (int(v) for v in fields[1::2]))).get("tw")
    return None


def _pyroute2_seconds(repeat: int) -> tuple[float, int] | None:
    """Seconds of pyroute2's DiagSocket dump of every ESTABLISHED and LISTEN TCP socket (both families), records."""
    try:
        from pyroute2 import DiagSocket
    except ImportError:
        return None
    states = (1 << 1) | (1 << 10)
    count = 0

    def dump() -> None:
        nonlocal count
        with DiagSocket() as diag:
            diag.bind()
            count = sum(len(diag.get_sock_stats(family=family, states=states))
                        for family in (socket.AF_INET, socket.AF_INET6))

    return _median_seconds(dump, repeat), count


class Held:
    """The server and its 4 workers, and the client processes, each in a session of its own (stopped by group)."""

    def __init__(self) -> None:
        self.server = subprocess.Popen([sys.executable, "-c", SERVER, str(WORKERS)], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, start_new_session=True)
        self.port = int(self.server.stdout.readline())
        self.clients: list[subprocess.Popen] = []
        self.accepted = 0

    def grow(self, total: int, timeout: float = 120) -> None:
        """Open connections until `total` are held and accepted."""
        deadline = time.monotonic() + timeout
        opened = sum(int(client.args[-1]) for client in self.clients)
        started = []
        while opened < total:
            n = min(PER_CLIENT, total - opened)
            client = subprocess.Popen([sys.executable, "-c", CLIENT, str(self.port), str(n)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True, start_new_session=True)
            self.clients.append(client)
            started.append(client)
            opened += n
        while self.accepted < total:  # one byte per accept from the workers
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.accepted} of {total} connections accepted in {timeout} s")
            self.accepted += len(os.read(self.server.stdout.fileno(), 65536))
        for client in started:
            if client.stdout.readline().strip() != "held":
                raise RuntimeError("a client process failed to open its connections")

    def stop(self) -> None:
        for proc in [self.server, *self.clients]:  # the server first: TIME_WAIT on its port, not on ephemeral ones
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)


def measure(counts: list[int], repeat: int) -> list[dict]:
    rows = []
    held = Held()
    try:
        for count in counts:
            held.grow(count)
            probe = ProcessProbe(held.server.pid, "target", include_children=True)
            members = probe._members()
            assert len(members) == WORKERS + 1, members
            sockstat = read_sockstat()
            row = {"connections": count, "host_tcp_sockets": sockstat[0], "host_time_wait": _time_wait()}
            counted = {}
            for path, netlink in (("psutil", False), ("netlink", True)):
                probe.netlink = netlink
                tick = _median_seconds(lambda: probe.read_all(sockstat), repeat)
                conns = probe._connections(members)
                assert probe.netlink == netlink, "sock_diag was refused: nothing to compare"
                counted[path] = split_connections([c for one in conns.values() for c in one or []])
                count_only = _median_seconds(lambda: probe._connections(members), repeat)
                row[f"{path}_tick_s"], row[f"{path}_count_s"] = tick, count_only
            if counted["psutil"] != counted["netlink"] or counted["netlink"][0] != count:
                raise AssertionError(f"counts differ at {count}: {counted}")
            reading = Reading()
            read_tcp([member.pid for member in members], reading)
            row["netlink_records"], row["netlink_dumps"] = reading.records, reading.dumps
            row["full_dump_s"], row["full_dump_records"] = _full_dump_seconds(repeat)
            pyroute2 = _pyroute2_seconds(repeat)
            if pyroute2 is not None:
                row["pyroute2_dump_s"], row["pyroute2_records"] = pyroute2
            rows.append(row)
            print(_line(row), flush=True)
    finally:
        held.stop()
    return rows


def _line(row: dict) -> str:
    text = (f"{row['connections']:>7,} connections ({row['host_tcp_sockets']:,} TCP sockets on the host, "
            f"{row['host_time_wait']:,} in TIME_WAIT): "
            f"tick psutil {row['psutil_tick_s'] * 1000:8.1f} ms, netlink {row['netlink_tick_s'] * 1000:6.1f} ms; "
            f"counting alone psutil {row['psutil_count_s'] * 1000:8.1f} ms, netlink {row['netlink_count_s'] * 1000:6.1f} ms "
            f"({row['netlink_records']:,} records in {row['netlink_dumps']} dumps); "
            f"unfiltered dump parsed {row['full_dump_s'] * 1000:.1f} ms ({row['full_dump_records']:,} records)")
    if "pyroute2_dump_s" in row:
        text += f"; pyroute2 dump {row['pyroute2_dump_s'] * 1000:.1f} ms ({row['pyroute2_records']:,} records)"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rtcap.bench.sockets", description=__doc__.split("\n")[0])
    parser.add_argument("--counts", default="2000,8000,15000",
                        help="connections to hold, comma-separated, increasing (default 2000,8000,15000)")
    parser.add_argument("--repeat", type=int, default=3, help="reads per figure; the median is shown (default 3)")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.counts.split(",")]
    if counts != sorted(counts) or counts[0] < 1:
        parser.error("--counts must be positive and increasing")
    print(f"{os.cpu_count()} cores, psutil {psutil.__version__}, {WORKERS} forked workers, connections on 127.0.0.1")
    measure(counts, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
