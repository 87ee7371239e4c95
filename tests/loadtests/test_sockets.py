"""sockets.py's sock_diag reading against psutil's, on real sockets on 127.0.0.1 and ::1."""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

from rtcap.loadtests.run import sockets
from rtcap.loadtests.run.process_probe import ProcessProbe
from rtcap.loadtests.run.sockets import (NetlinkUnavailable, Reading, dump, local_port_in, open_netlink,
                                         peer_port_in, read_tcp, split_connections)

pytestmark = [pytest.mark.timeout(60),
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sock_diag is Linux's")]

# A server with a listener on 127.0.0.1 and one on ::1, driven line by line on stdin; it answers "done" (or
# "child PID") on stdout once each command is carried out. `fork` starts a child that inherits every socket (a
# pre-fork worker), opens a connection to the parent's listener (a worker to its broker: internal) and one to
# the test's own listener (outgoing), and lives until the parent, at the end of its stdin, kills and reaps it.
SERVER = r"""
import os, signal, socket, sys
children = []
outside = int(sys.argv[1])
v4 = socket.socket(); v4.bind(("127.0.0.1", 0)); v4.listen(64)
v6 = socket.socket(socket.AF_INET6); v6.bind(("::1", 0)); v6.listen(64)
print(v4.getsockname()[1], v6.getsockname()[1], flush=True)
held = []
for line in sys.stdin:
    command, *args = line.split()
    if command == "accept4":
        held += [v4.accept()[0] for _ in range(int(args[0]))]
    elif command == "accept6":
        held += [v6.accept()[0] for _ in range(int(args[0]))]
    elif command == "dup":  # the v4 listener under a second fd: psutil names the first one
        held.append(os.dup(v4.fileno()))
    elif command == "out":
        held.append(socket.create_connection(("127.0.0.1", outside)))
    elif command == "fork":
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(write_end)
            mine = [socket.create_connection(("127.0.0.1", v4.getsockname()[1])),
                    socket.create_connection(("127.0.0.1", outside))]
            print("child", os.getpid(), flush=True)
            os.read(read_end, 1)  # returns when the parent has exited
            os._exit(0)
        os.close(read_end)
        children.append(child)
        continue  # the child says when it is ready
    print("done", flush=True)
for child in children:
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
"""


class Server:
    """The server above, every line it prints awaited with a deadline (no sleeps); stopped with its child."""

    def __init__(self, outside_port: int) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, str(outside_port)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, start_new_session=True)
        self._buffer = b""
        self.v4, self.v6 = (int(port) for port in self.line().split())
        self.child: int | None = None

    def line(self, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                raise TimeoutError(f"the server said nothing in {timeout} s")
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                raise EOFError("the server exited")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def do(self, command: str) -> str:
        self.proc.stdin.write(command.encode() + b"\n")
        self.proc.stdin.flush()
        return self.line()

    def pids(self) -> list[int]:
        return [self.proc.pid] + ([self.child] if self.child else [])

    def stop(self) -> None:
        self.proc.stdin.close()  # the server kills and reaps its child, then exits
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the session started for the server and its child
            self.proc.wait(10)
        self.proc.stdout.close()


@pytest.fixture
def world():
    """The test's own listener (the server's outgoing connections go there), the server, the clients."""
    outside = socket.socket()
    outside.bind(("127.0.0.1", 0))
    outside.listen(64)
    outside.settimeout(15)  # every accept here is bounded
    server = Server(outside.getsockname()[1])
    clients: list[socket.socket] = []
    try:
        yield outside, server, clients
    finally:
        server.stop()
        for one in clients:
            one.close()
        outside.close()


def _psutil_view(pid: int) -> set[tuple]:
    return {(c.fd, c.family, c.laddr, c.raddr, c.status) for c in psutil.Process(pid).net_connections(kind="tcp")
            if c.status in (psutil.CONN_ESTABLISHED, psutil.CONN_LISTEN)}


def _netlink_view(conns: list) -> set[tuple]:
    return {(c.fd, c.family, c.laddr, c.raddr, c.status) for c in conns}


def _counts(probe: ProcessProbe) -> list[tuple]:
    return [(s.role, s.pid, s.tcp_established, s.tcp_outgoing) for s in probe.read_all((None, None))]


def _compare(server: Server, inbound: int, outgoing: int) -> Reading:
    """sock_diag's lists equal psutil's member by member, and the probe's counts are the same either way."""
    reading = Reading()
    holdings = read_tcp(server.pids(), reading)
    assert not holdings.gone
    for pid in server.pids():
        assert _netlink_view(holdings.conns[pid]) == _psutil_view(pid)
    every = [c for pid in server.pids() for c in holdings.conns[pid]]
    assert split_connections(every) == (inbound, outgoing)
    netlink = ProcessProbe(server.proc.pid, "target", include_children=True)
    fallback = ProcessProbe(server.proc.pid, "target", include_children=True)
    fallback.netlink = False
    assert _counts(netlink) == _counts(fallback)
    assert _counts(netlink)[0][2:] == (inbound, outgoing)
    assert netlink.netlink, "sock_diag was refused: the comparison compared psutil with itself"
    return reading


def test_counts_equal_psutils_for_listeners_clients_a_forked_worker_and_outgoing_connections(world) -> None:
    outside, server, clients = world
    assert server.do("dup") == "done"
    reading = _compare(server, 0, 0)  # listening only
    assert reading.dumps == 4  # listeners, then the rest: no socket of the server left unaccounted for

    clients += [socket.create_connection(("127.0.0.1", server.v4)) for _ in range(3)]
    assert server.do("accept4 3") == "done"
    clients += [socket.create_connection(("::1", server.v6)) for _ in range(2)]
    assert server.do("accept6 2") == "done"
    _compare(server, 5, 0)

    assert server.do("out") == "done"  # to a port no member listens on
    accepted = [outside.accept()[0]]
    _compare(server, 5, 1)

    # A forked worker shares the 5 accepted sockets and both listeners (each counts once), reaches the parent's
    # listener (internal, both ends members: not inbound; the worker's end is outgoing) and the outside.
    said = server.do("fork")
    assert said.startswith("child ")
    server.child = int(said.split()[1])
    accepted.append(outside.accept()[0])
    try:
        assert server.do("accept4 1") == "done"
        reading = _compare(server, 5, 3)
        assert reading.dumps > 4  # the worker's end towards a listened port needed the third read

        clients.append(socket.create_connection(("127.0.0.1", server.v4)))
        assert server.do("accept4 1") == "done"
        _compare(server, 6, 3)
    finally:
        for one in accepted:
            one.close()


def test_the_probe_counts_with_psutil_when_netlink_is_refused(world, monkeypatch) -> None:
    outside, server, clients = world
    clients += [socket.create_connection(("127.0.0.1", server.v4)) for _ in range(2)]
    assert server.do("accept4 2") == "done"
    clients.append(socket.create_connection(("::1", server.v6)))
    assert server.do("accept6 1") == "done"
    assert server.do("out") == "done"
    accepted = outside.accept()[0]
    try:
        expected = _counts(ProcessProbe(server.proc.pid, "target"))
        assert expected[0][2:] == (3, 1)

        real = socket.socket

        def refusing(family=-1, *args, **kwargs):
            if family == socket.AF_NETLINK:
                raise PermissionError(errno.EPERM, "Operation not permitted")
            return real(family, *args, **kwargs)

        monkeypatch.setattr(socket, "socket", refusing)
        with pytest.raises(NetlinkUnavailable):
            read_tcp([server.proc.pid])
        probe = ProcessProbe(server.proc.pid, "target")
        assert probe.netlink
        assert _counts(probe) == expected  # the same numbers, from psutil
        assert not probe.netlink  # and psutil from now on, without asking again
        assert _counts(probe) == expected
        monkeypatch.undo()
        assert _counts(ProcessProbe(server.proc.pid, "target")) == expected
    finally:
        accepted.close()


def test_a_dump_the_kernel_refuses_is_netlink_unavailable() -> None:
    sock = open_netlink()
    try:
        with pytest.raises(NetlinkUnavailable) as refused:
            # An operation code no kernel knows: inet_diag answers EINVAL instead of records.
            dump(sock, socket.AF_INET, sockets.ESTABLISHED, sockets._OP.pack(99, 4, 8), {}, {}, bytearray(1 << 16))
        assert refused.value.errno == errno.EINVAL
    finally:
        sock.close()


class _Everything(dict):
    """Every inode wanted, each named fd -1."""

    def get(self, key: object, default: object = None) -> int:
        return -1


def test_the_kernel_filters_select_by_local_and_peer_port() -> None:
    listeners = [socket.socket() for _ in range(2)]
    pairs = []
    try:
        for listener in listeners:
            listener.bind(("127.0.0.1", 0))
            listener.listen(8)
            listener.settimeout(15)
        a, b = (listener.getsockname()[1] for listener in listeners)
        for port, count in ((a, 3), (b, 2)):
            for _ in range(count):
                client = socket.create_connection(("127.0.0.1", port))
                pairs.append((client, listeners[port == b].accept()[0]))
        mine = {os.fstat(s.fileno()).st_ino for pair in pairs for s in pair}

        def ask(bytecode: bytes) -> list[tuple]:
            sock = open_netlink()
            try:
                found: dict = {}
                dump(sock, socket.AF_INET, sockets.ESTABLISHED, bytecode, _Everything(), found, bytearray(1 << 16))
            finally:
                sock.close()
            return sorted((conn.laddr.port, conn.raddr.port) for inode, conn in found.items() if inode in mine)

        every = ask(b"")
        assert len(every) == 10  # both ends of the 5 connections

        def check(bytecode: bytes, wanted) -> None:
            expected = [(local, peer) for local, peer in every if wanted(local, peer)]
            assert expected and expected != every  # each filter is told apart from none and from everything
            assert ask(bytecode) == expected

        _and, _or, _not = sockets._and, sockets._or, sockets._not
        check(local_port_in([a]), lambda local, peer: local == a)
        check(local_port_in([a, b]), lambda local, peer: local in (a, b))
        check(peer_port_in([b]), lambda local, peer: peer == b)
        check(_not(local_port_in([a, b])), lambda local, peer: local not in (a, b))
        # What read_tcp asks after the listeners, then the part of the rest it asks only when needed.
        check(_or(local_port_in([b]), _not(peer_port_in([a, b]))), lambda local, peer: local == b or peer not in (a, b))
        check(_and(_not(local_port_in([b])), peer_port_in([b])), lambda local, peer: local != b and peer == b)
        check(_or(local_port_in([b]), peer_port_in([a])), lambda local, peer: local == b or peer == a)
        check(_and(local_port_in([a, b]), _not(local_port_in([b]))), lambda local, peer: local == a)
        assert ask(_and(_not(local_port_in([a, b])), _not(peer_port_in([a, b])))) == []
    finally:
        for pair in pairs:
            for one in pair:
                one.close()
        for listener in listeners:
            listener.close()


def test_a_process_that_exited_is_gone_not_empty() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(10)
    holdings = read_tcp([child.pid, os.getpid()])
    assert child.pid in holdings.gone and child.pid not in holdings.conns
    assert holdings.conns[os.getpid()] is not None


CLIENTS = r"""
import socket, sys
held = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(int(sys.argv[2]))]
print("held", flush=True)
sys.stdin.read()
"""


def test_a_member_reaching_a_member_broker_is_found_without_reading_the_clients_ends() -> None:
    # This process is the target: an HTTP-like listener with 6 clients (another process) and a broker-like
    # listener it connects to itself (both ends members: internal; its own end is outgoing).
    http, broker = socket.socket(), socket.socket()
    held: list[socket.socket] = []
    clients = None
    try:
        for listener in (http, broker):
            listener.bind(("127.0.0.1", 0))
            listener.listen(16)
            listener.settimeout(15)
        clients = subprocess.Popen([sys.executable, "-c", CLIENTS, str(http.getsockname()[1]), "6"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        held += [http.accept()[0] for _ in range(6)]
        assert select.select([clients.stdout], [], [], 15)[0] and clients.stdout.readline().strip() == "held"
        held.append(socket.create_connection(("127.0.0.1", broker.getsockname()[1])))
        held.append(broker.accept()[0])

        reading = Reading()
        conns = read_tcp([os.getpid()], reading).conns[os.getpid()]
        assert _netlink_view(conns) == _psutil_view(os.getpid())
        assert split_connections(conns) == (6, 1)
        assert reading.peer_ports == [broker.getsockname()[1]]  # never the clients' ends towards the HTTP port
    finally:
        for one in [*held, http, broker]:
            one.close()
        if clients is not None:
            clients.stdin.close()
            clients.wait(10)
            clients.stdout.close()
