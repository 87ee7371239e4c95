"""The established and listening TCP sockets of a set of processes, read once for all of them, and how many of
them are inbound (what clients opened) or outgoing.

psutil's `Process.net_connections()` parses the whole of /proc/net/tcp and /proc/net/tcp6 as text, once per
process asked: with 10^4-10^6 sockets on the host one sampling tick took longer than the interval. Here the
kernel's sock_diag netlink interface (NETLINK_SOCK_DIAG, inet_diag_req_v2) answers with binary records
(addresses, ports, state, inode), the member processes' sockets are the `socket:[N]` links in their
/proc/PID/fd, and the table is read once per tick for every member. Kernel-side bytecode filters keep what
crosses into Python close to the target's own sockets:

1. the listening sockets (few), which give the ports the members listen on, L;
2. the other sockets whose local port is in L or whose peer port is not: the accepted connections, and any
   outgoing connection to a port no member listens on; not the far ends of the clients' connections to the
   target (a load generator on the same host holds as many as the target);
3. only when a member holds a TCP socket that 1-2 did not return (os.getxattr "system.sockprotoname" tells
   TCP from UNIX or UDP without reading it): the sockets from a port not in L to one port of L, which is how
   a member reaches a broker that is a member too; port by port, the fewest accepted connections first, until
   every such socket is found, so a local generator's ends to the target's port are read only when the
   sockets looked for are not all elsewhere (a member's TCP socket in no table: created, not yet connected).

The counts are psutil's exactly (tests/loadtests/test_sockets.py compares them on real sockets): each member's
list holds what `net_connections(kind="tcp")` gives in the ESTABLISHED and LISTEN states, with the same
address strings (socket.inet_ntop), and `split_connections` is the same arithmetic on either. Where netlink
cannot be used (not Linux, a sandbox that refuses it: EPERM, no inet_diag) `NetlinkUnavailable` is raised
and process_probe.py counts with psutil as before.

Why not pyroute2 (on PyPI, maintained: 0.9.7 of 2026-10, DiagSocket is its sock_diag client): it builds a
dict per record and per attribute in Python, 0.9.7 sends no INET_DIAG_REQ_BYTECODE, so it reads every socket
of the host, and its `get_sock_stats` says its signature will change ("WIP-code"). Measured with bench/sockets.py on this 2-core box (shared with other work: the figures
move by 2x from run to run), dumping every ESTABLISHED and LISTEN socket of the host, both families:
pyroute2's `get_sock_stats` took 229 ms for 4,008 records, 1,142 ms for 16,003 and 3,288 ms for 34,004
(70-100 us a record: 7-10 s for 100k records, 14-20 sampling intervals); `dump` here, unfiltered, every
record parsed, 13 ms, 66 ms and 137 ms (~4 us a record: ~0.4 s for 100k). The request is ~100 lines of
`socket.AF_NETLINK` and `struct`, and `rtcap agent` keeps psutil as its only dependency.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import sys
from collections import namedtuple
from dataclasses import dataclass, field
from typing import Any, Iterable

import psutil

CONN_ESTABLISHED = psutil.CONN_ESTABLISHED
CONN_LISTEN = psutil.CONN_LISTEN

Address = namedtuple("Address", ["ip", "port"])
"""Equal to psutil's `addr` for the same socket."""

Connection = namedtuple("Connection", ["fd", "family", "type", "laddr", "raddr", "status"])
"""Like psutil's `pconn`: laddr and raddr are Address, or () for port 0 (a listener's peer)."""


class NetlinkUnavailable(OSError):
    """sock_diag cannot be used here (not Linux, refused, no inet_diag): count with psutil."""


# --- counting: the same arithmetic for psutil's connections and ours ------------------------------------------

def listening_and_internal(conns_of: list[list[Any] | None]) -> tuple[set[int], set[tuple[Any, Any]]]:
    """The ports members listen on, and the established sockets whose peer is a member too (a worker's connection
    to the broker the deployment started, seen from both ends): internal traffic, not what clients opened."""
    conns = [c for one in conns_of if one for c in one]
    listening = {c.laddr.port for c in conns if c.status == CONN_LISTEN and c.laddr}
    established = {(c.laddr, c.raddr) for c in conns if c.status == CONN_ESTABLISHED and c.laddr}
    return listening, {(laddr, raddr) for laddr, raddr in established if (raddr, laddr) in established}


def split_connections(conns: list[Any] | None, listening: set[int] | None = None,
                      internal: set[tuple[Any, Any]] | None = None) -> tuple[int | None, int | None]:
    """(inbound, outgoing) established sockets: inbound ones have a local port some member listens on and a peer
    that is not a member; outgoing ones a local port no member listens on (to a backend or the broker). A socket
    several members hold (forked workers share it) counts once."""
    if conns is None:
        return None, None
    if listening is None or internal is None:
        listening, internal = listening_and_internal([conns])
    established = {(c.laddr, c.raddr) for c in conns if c.status == CONN_ESTABLISHED and c.laddr}
    inbound = sum(1 for pair in established if pair[0].port in listening and pair not in internal)
    return inbound, sum(1 for laddr, _ in established if laddr.port not in listening)


# --- the members' socket inodes ---------------------------------------------------------------------------

@dataclass
class Holdings:
    """What one read found: each member's connections (None when its fds cannot be read: not permitted), and the
    members that exited meanwhile (psutil would have raised NoSuchProcess for them)."""

    conns: dict[int, list[Connection] | None] = field(default_factory=dict)
    gone: set[int] = field(default_factory=set)


def socket_inodes(pid: int) -> dict[int, int]:
    """inode -> the first fd (in /proc/PID/fd's order, as psutil lists them) of each socket the process holds. Raises
    ProcessLookupError when the process is gone, PermissionError when its fds may not be read."""
    try:
        directory = os.open(f"/proc/{pid}/fd", os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None
    found: dict[int, int] = {}
    try:
        for name in os.listdir(directory):
            try:
                target = os.readlink(name, dir_fd=directory)
            except (FileNotFoundError, ProcessLookupError):
                continue  # closed meanwhile
            except OSError as error:
                if error.errno == errno.EINVAL:
                    continue
                raise
            if target.startswith("socket:["):
                found.setdefault(int(target[8:-1]), int(name))
    finally:
        os.close(directory)
    return found


# --- sock_diag --------------------------------------------------------------------------------------------

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
INET_DIAG_REQ_BYTECODE = 1
INET_DIAG_BC_JMP, INET_DIAG_BC_S_GE, INET_DIAG_BC_S_LE, INET_DIAG_BC_D_GE, INET_DIAG_BC_D_LE = 1, 2, 3, 4, 5
TCP_ESTABLISHED, TCP_TIME_WAIT, TCP_LISTEN, TCP_NEW_SYN_RECV = 1, 6, 10, 12
LISTENING = 1 << TCP_LISTEN
CONNECTED = ((1 << 13) - 2) & ~(1 << TCP_TIME_WAIT | 1 << TCP_LISTEN | 1 << TCP_NEW_SYN_RECV)
"""Every state a socket a process holds can be in but LISTEN (TIME_WAIT and request sockets have no inode)."""
ESTABLISHED = 1 << TCP_ESTABLISHED
FILTERED_PORTS = 256
"""Members listening on more ports than this are read without a filter (the bytecode's jumps are 16-bit)."""

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
_REQUEST = struct.Struct("=BBBBI48x")  # inet_diag_req_v2: family, protocol, ext, pad, states, an empty sockid
_ATTR = struct.Struct("=HH")
_OP = struct.Struct("=BBH")  # inet_diag_bc_op: code, yes, no
_LENGTH_TYPE = struct.Struct("=IH")
_RECORD = struct.Struct("=IH11xB2xHH16s16s28xI")
"""nlmsghdr's length and type, then inet_diag_msg's state, ports (network order), addresses and inode."""
_ADDRESSES = {socket.AF_INET: 4, socket.AF_INET6: 16}
_FAMILIES = {int(family): family for family in _ADDRESSES}
_STATES = {TCP_ESTABLISHED: CONN_ESTABLISHED, TCP_LISTEN: CONN_LISTEN}


# Bytecode, composed as iproute2's ss does: a condition of length n ends at n when true and at n + 4 when false.
def _port(ge: int, le: int, port: int) -> bytes:
    """port == `port` (GE and LE: EQ is only in kernels from 4.17)."""
    return _and(_OP.pack(ge, 8, 12) + _OP.pack(0, 0, port), _OP.pack(le, 8, 12) + _OP.pack(0, 0, port))


def _or(first: bytes, second: bytes) -> bytes:
    return first + _OP.pack(INET_DIAG_BC_JMP, 4, len(second) + 4) + second


def _not(condition: bytes) -> bytes:
    return condition + _OP.pack(INET_DIAG_BC_JMP, 4, 8)


def _and(first: bytes, second: bytes) -> bytes:
    patched = bytearray(first)
    at, left = 0, len(first)
    while left > 0:  # the first condition's exits on false skip the second one too
        code, yes, no = _OP.unpack_from(patched, at)
        if no == left + 4:
            _OP.pack_into(patched, at, code, yes, no + len(second))
        at, left = at + yes, left - yes
    return bytes(patched) + second


def _any_port(ge: int, le: int, ports: Iterable[int]) -> bytes:
    condition = b""
    for port in sorted(ports):
        one = _port(ge, le, port)
        condition = _or(condition, one) if condition else one
    return condition


def local_port_in(ports: Iterable[int]) -> bytes:
    return _any_port(INET_DIAG_BC_S_GE, INET_DIAG_BC_S_LE, ports)


def peer_port_in(ports: Iterable[int]) -> bytes:
    return _any_port(INET_DIAG_BC_D_GE, INET_DIAG_BC_D_LE, ports)


def open_netlink() -> socket.socket:
    """A NETLINK_SOCK_DIAG socket; NetlinkUnavailable where there is none or it is refused."""
    if not sys.platform.startswith("linux") or not hasattr(socket, "AF_NETLINK"):
        raise NetlinkUnavailable(errno.EAFNOSUPPORT, "sock_diag netlink is Linux's")
    try:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
    except OSError as error:
        raise NetlinkUnavailable(error.errno, f"sock_diag netlink socket: {error.strerror}") from None


def dump(sock: socket.socket, family: int, states: int, bytecode: bytes, wanted: dict[int, int],
         found: dict[int, Connection | None], buffer: bytearray, sequence: int = 1) -> int:
    """Ask the kernel for the TCP sockets of `family` in `states` (a bit per TCP state) that `bytecode` accepts
    (b"": all), and put into `found` those whose inode is in `wanted` (inode -> the fd to name it by): their
    Connection if ESTABLISHED or LISTEN, else None. Returns how many records the kernel sent. NetlinkUnavailable
    when it refuses."""
    request = _REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, states)
    if bytecode:
        request += _ATTR.pack(_ATTR.size + len(bytecode), INET_DIAG_REQ_BYTECODE) + bytecode
    sock.sendto(_HEADER.pack(_HEADER.size + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP,
                             sequence, 0) + request, (0, 0))
    size = _ADDRESSES[family]
    named = _FAMILIES[family]
    ips: dict[bytes, str] = {}
    locals_: dict[tuple[bytes, int], Address] = {}
    records = 0
    ntohs, record, get = socket.ntohs, _RECORD.unpack_from, wanted.get
    while True:
        end = sock.recv_into(buffer)
        at = 0
        while at + _HEADER.size <= end:
            if at + _RECORD.size <= end:
                length, kind, state, sport, dport, src, dst, inode = record(buffer, at)
            else:
                (length, kind), inode = _LENGTH_TYPE.unpack_from(buffer, at), None
            if kind != SOCK_DIAG_BY_FAMILY:
                if kind == NLMSG_DONE:
                    return records
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", buffer, at + _HEADER.size)[0]
                    raise NetlinkUnavailable(code, f"sock_diag refused the dump: {os.strerror(code)}")
            elif inode is None or length < _RECORD.size:
                raise NetlinkUnavailable(errno.EPROTO, "sock_diag sent a malformed record")
            else:
                records += 1
                fd = get(inode)
                if fd is not None:
                    status = _STATES.get(state)
                    if status is None:
                        found[inode] = None  # held, in a state no count looks at
                    else:
                        sport, dport = ntohs(sport), ntohs(dport)
                        laddr = locals_.get((src, sport))
                        if laddr is None:
                            ip = ips.get(src) or ips.setdefault(src, socket.inet_ntop(family, src[:size]))
                            laddr = locals_[(src, sport)] = Address(ip, sport) if sport else ()
                        if dport:
                            ip = ips.get(dst) or ips.setdefault(dst, socket.inet_ntop(family, dst[:size]))
                            raddr = Address(ip, dport)
                        else:
                            raddr = ()
                        found[inode] = Connection(fd, named, socket.SOCK_STREAM, laddr, raddr, status)
            if length < _HEADER.size:
                raise NetlinkUnavailable(errno.EPROTO, "sock_diag sent a malformed record")
            at += (length + 3) & ~3


def _is_tcp(pid: int, fd: int) -> bool:
    """Whether the socket at /proc/PID/fd/FD is a TCP one (sockfs's "system.sockprotoname": TCP, TCPv6, UNIX...).
    True when that cannot be told: the caller then reads more, never less."""
    try:
        return os.getxattr(f"/proc/{pid}/fd/{fd}", "system.sockprotoname").rstrip(b"\0") in (b"TCP", b"TCPv6")
    except (FileNotFoundError, ProcessLookupError):
        return False  # closed meanwhile
    except OSError:
        return True


@dataclass
class Reading:
    """What `read_tcp` did, for the benchmark and the tests: records the kernel sent, dumps asked, and the
    listened ports whose connecting ends were read (step 3)."""

    records: int = 0
    dumps: int = 0
    peer_ports: list[int] = field(default_factory=list)


def read_tcp(pids: Iterable[int], reading: Reading | None = None) -> Holdings:
    """The established and listening TCP sockets of each of `pids`, as psutil's `net_connections(kind="tcp")`
    lists them in those states, from one read of the kernel's table for them all. NetlinkUnavailable when
    sock_diag cannot be used."""
    reading = reading if reading is not None else Reading()
    holdings = Holdings()
    held: dict[int, dict[int, int]] = {}
    for pid in pids:
        try:
            held[pid] = socket_inodes(pid)
        except ProcessLookupError:
            holdings.gone.add(pid)
        except PermissionError:
            holdings.conns[pid] = None
    wanted: dict[int, int] = {}  # inode -> fd in the first member that holds it
    first: dict[int, int] = {}  # inode -> that member
    for pid, inodes in held.items():
        for inode, fd in inodes.items():
            if inode not in wanted:
                wanted[inode], first[inode] = fd, pid
    found: dict[int, Connection | None] = {}
    if wanted:
        buffer = bytearray(1 << 16)
        sock = open_netlink()
        try:
            sequence = 0

            def ask(states: int, bytecode: bytes) -> None:
                nonlocal sequence
                for family in (socket.AF_INET, socket.AF_INET6):
                    sequence += 1
                    reading.records += dump(sock, family, states, bytecode, wanted, found, buffer, sequence)
                    reading.dumps += 1

            try:
                ask(LISTENING, b"")
                listening = {conn.laddr.port for conn in found.values() if conn and conn.status == CONN_LISTEN}
                if listening and len(listening) <= FILTERED_PORTS:
                    ask(CONNECTED, _or(local_port_in(listening), _not(peer_port_in(listening))))
                    unseen = {inode for inode, fd in wanted.items() if inode not in found and _is_tcp(first[inode], fd)}
                    # Port by port, the one with the fewest accepted connections first (a broker's, not the
                    # clients'), until every such socket is found: mostly before the clients' ends are read.
                    accepted = {port: 0 for port in listening}
                    for conn in found.values():
                        if conn and conn.status == CONN_ESTABLISHED and conn.laddr.port in accepted:
                            accepted[conn.laddr.port] += 1
                    for port in sorted(listening, key=lambda port: (accepted[port], port)):
                        if all(inode in found for inode in unseen):
                            break
                        ask(CONNECTED, _and(_not(local_port_in(listening)), peer_port_in([port])))
                        reading.peer_ports.append(port)
                else:
                    ask(CONNECTED, b"")
            except NetlinkUnavailable:
                raise
            except OSError as error:  # EPERM, ENOBUFS...: psutil, not a probe the sampler drops as gone
                raise NetlinkUnavailable(error.errno, f"sock_diag: {error.strerror}") from None
        finally:
            sock.close()
    for pid, inodes in held.items():
        conns = []
        for inode, fd in inodes.items():
            conn = found.get(inode)
            if conn is not None:
                conns.append(conn if conn.fd == fd else conn._replace(fd=fd))
        holdings.conns[pid] = conns
    return holdings
