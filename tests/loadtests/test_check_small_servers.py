"""`check_transport` against small stdlib servers that behave like real ones the reference target does not:
stale timestamps, ts in the wrong unit, "latest N" pages newest first, long polls that only hold."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rtcap.loadtests.run.check import check_process, check_transport, format_table
from rtcap.targets.adapter import TargetAdapter, adapter_from_dict
from rtcap.targets.launch import LaunchedTarget, launch

SERVER = r'''
"""A one-channel event server: POST /publish numbers and stamps an event; GET /poll lists them."""
import argparse, json, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--mode", choices=["stale", "ms", "desc", "holdonly"], required=True)
args = parser.parse_args()
events, changed = [], threading.Condition()


def stamp():
    if args.mode == "stale":
        return time.time() - 84.176  # as if served from a page cached 84 s ago
    if args.mode == "ms":
        return time.time() * 1000  # milliseconds, while the adapter says seconds
    return time.time()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with changed:
            events.append({"seq": len(events) + 1, "ts": stamp()})
            changed.notify_all()
        self.reply({"seq": len(events)})

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/healthz":
            return self.reply({"ok": True})
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        since, wait = int(query.get("since", "0")), float(query.get("wait", "0"))
        with changed:
            if args.mode == "holdonly":
                # Only what is published while this request is held; nothing from before it.
                held_from = len(events)
                changed.wait_for(lambda: len(events) > held_from, timeout=wait)
                found = events[held_from:]
            elif args.mode == "desc":
                found = events[::-1][:10]  # "latest 10", newest first, whatever the cursor
            else:
                found = [e for e in events if e["seq"] > since]
        self.reply({"events": found})

    def reply(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args):
        pass


ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
'''


@pytest.fixture
def small_server(tmp_path: Path) -> Iterator[Callable[..., TargetAdapter]]:
    """Start the small server in a mode, with extra keys for its poll/longpoll tables; stopped after the test."""
    script = tmp_path / "small_server.py"
    script.write_text(SERVER, encoding="utf-8")
    started: list[LaunchedTarget] = []

    def start(mode: str, **poll_keys: Any) -> TargetAdapter:
        adapter = adapter_from_dict({
            "name": f"small-{mode}",
            "base_url": "http://127.0.0.1:{port}",
            "publish": {"mode": "http", "url": "/publish?channel={channel}", "body": "{counter}"},
            "transports": {
                "poll": {"url": "/poll?since={cursor}", "events": "events", **poll_keys},
                "longpoll": {"url": "/poll?since={cursor}&wait=5", "events": "events", **poll_keys},
            },
            "process": {"start": ["{python}", str(script), "--port", "{port}", "--mode", mode],
                        "ready_url": "/healthz", "start_timeout": 10},
        })
        target = launch(adapter, rate=1.0, payload=8, log_path=tmp_path / f"{mode}.log")
        started.append(target)
        return target.adapter

    try:
        yield start
    finally:
        for target in started:
            target.stop()


def test_old_events_are_not_taken_for_the_ones_just_published(small_server) -> None:
    result = check_transport(small_server("stale"), "poll", timeout=3.0)
    assert not result.ok
    assert "0 of 3 events published arrived within 3 s" in result.why
    assert "stale event(s) ignored" in result.why and "recv - ts = 84," in result.why
    assert "replayed history" in result.why and "clock" in result.why


def test_ts_in_milliseconds_read_as_seconds_names_the_unit(small_server) -> None:
    result = check_transport(small_server("ms"), "poll", timeout=2.0)
    assert not result.ok
    assert 'ts is in ms, not s: set ts_unit = "ms"' in result.why


def test_a_latest_page_listed_newest_first_passes_with_order_desc(small_server) -> None:
    result = check_transport(small_server("desc", order="desc"), "poll", timeout=5.0)
    assert result.ok, result.why
    assert result.events == 3 and result.offset_ms is not None and 0 <= result.offset_ms < 1000


def test_a_newest_first_page_without_order_fails_with_the_hint(small_server) -> None:
    result = check_transport(small_server("desc"), "poll", timeout=5.0)
    assert not result.ok
    assert "sequence numbers must increase" in result.why and 'order = "desc"' in result.why


def test_a_hold_only_long_poll_gets_events_published_while_it_is_held(small_server) -> None:
    adapter = small_server("holdonly")
    result = check_transport(adapter, "longpoll", timeout=6.0)
    assert result.ok, result.why
    assert result.events == 3 and result.offset_ms is not None and 0 <= result.offset_ms < 1000
    # The first answer waited for the check's publish; the TCP connect did not.
    assert result.first_answer_ms is not None and result.connect_ms is not None
    assert result.first_answer_ms > result.connect_ms
    table = format_table([result], check_process(adapter))
    header, row = table.splitlines()[:2]
    assert "connect" in header and "first answer" in header
    assert row.split()[:2] == ["longpoll", "ok"]
