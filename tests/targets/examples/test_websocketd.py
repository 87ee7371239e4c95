"""websocketd (targets/examples/websocketd): a server that publishes by itself, one process per connection."""

from __future__ import annotations

import json
import socket
import time

import psutil
import websocket

from tests.targets.examples.conftest import IO_TIMEOUT_S, Example, wait_for

RATE = 10  # the websocketd fixture's ticks per second


def tickers(ex: Example) -> list[psutil.Process]:
    """The ticker.py processes websocketd runs (one per open connection)."""
    found = []
    for child in psutil.Process(ex.pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and any(a.endswith("ticker.py") for a in child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def receive(ws: websocket.WebSocket, count: int) -> list[tuple[float, str]]:
    """`count` messages as (receive time, text)."""
    got = []
    for _ in range(count):
        opcode, data = ws.recv_data()
        assert opcode == websocket.ABNF.OPCODE_TEXT
        got.append((time.time(), data.decode()))
    return got


def test_listening_line_names_websocketd_which_listens_on_loopback(websocketd: Example) -> None:
    process = psutil.Process(websocketd.pid)
    assert process.name() == "websocketd"
    listening = [c for c in process.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN]
    assert [tuple(c.laddr) for c in listening] == [("127.0.0.1", websocketd.port)]


def test_two_clients_get_the_same_seq_values_with_ts_close_to_now(websocketd: Example) -> None:
    a = websocket.create_connection(f"{websocketd.ws_url}/", timeout=IO_TIMEOUT_S)
    b = websocket.create_connection(f"{websocketd.ws_url}/any/path?ignored=1", timeout=IO_TIMEOUT_S)
    try:
        got_a, got_b = [], []
        for _ in range(4):  # read both in turn, so each receive time is taken when the line arrives
            got_a += receive(a, 1)
            got_b += receive(b, 1)
    finally:
        a.close()
        b.close()
    lines: dict[int, set[str]] = {}
    for got in (got_a, got_b):
        seqs = []
        for received, text in got:
            event = json.loads(text)
            assert set(event) == {"seq", "ts"}
            assert event["ts"] == event["seq"] / RATE  # tick N is at N / rate on the wall clock
            assert -0.05 < received - event["ts"] < 1.0  # loopback delivery, a fresh timestamp
            seqs.append(event["seq"])
            lines.setdefault(event["seq"], set()).add(text)
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # one line per tick, none skipped
    common = {json.loads(t)["seq"] for _, t in got_a} & {json.loads(t)["seq"] for _, t in got_b}
    assert len(common) >= 3  # the clients connected within one tick of each other
    assert all(len(lines[seq]) == 1 for seq in common)  # byte-identical lines for the same tick


def test_each_connection_gets_its_own_ticker_process_that_ends_with_it(websocketd: Example) -> None:
    wait_for(lambda: not tickers(websocketd), what="earlier connections' tickers to exit")
    conns = [websocket.create_connection(f"{websocketd.ws_url}/", timeout=IO_TIMEOUT_S) for _ in range(3)]
    try:
        for ws in conns:
            receive(ws, 1)  # its ticker runs
        children = tickers(websocketd)
        assert len(children) == 3
        assert all(child.memory_info().rss > 1_000_000 for child in children)  # a whole interpreter each
        conns.pop().close()
        wait_for(lambda: len(tickers(websocketd)) == 2, what="the closed connection's ticker to exit")
    finally:
        for ws in conns:
            ws.close()
    wait_for(lambda: not tickers(websocketd), what="all tickers to exit")


def test_sigterm_stops_websocketd_and_its_tickers(start_example) -> None:
    ex = start_example("websocketd", "--rate", "20", "--payload", "16")
    ws = websocket.create_connection(f"{ex.ws_url}/", timeout=IO_TIMEOUT_S)
    try:
        event = json.loads(receive(ws, 1)[0][1])
        assert event["pad"] == "x" * 16 and event["ts"] == event["seq"] / 20
        server = psutil.Process(ex.pid)
        (ticker,) = tickers(ex)
        assert ex.stop() == 0
    finally:
        ws.close()
    assert not server.is_running() or server.status() == psutil.STATUS_ZOMBIE

    def gone() -> bool:
        try:
            return not ticker.is_running() or ticker.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_for(gone, what="the ticker to exit after websocketd")
    try:
        socket.create_connection((ex.host, ex.port), timeout=1).close()
    except OSError:
        pass
    else:
        raise AssertionError("something still accepts on the stopped server's port")
