"""Target adapter format: loading, strict validation, message fields, templates and URLs (pure, no network)."""

from __future__ import annotations

import json
import math
import re
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from rtcap.targets.adapter import (
    TRANSPORTS,
    AdapterError,
    FieldError,
    MessageSpec,
    ProcessSpec,
    PublishSpec,
    TargetAdapter,
    TransportSpec,
    adapter_from_dict,
    load_adapter,
    reference_adapter_path,
)

MINIMAL = """
name = "mine"
base_url = "http://127.0.0.1:9000"
[transports.sse]
url = "/events"
"""


def write(tmp_path: Path, text: str, name: str = "my.toml") -> Path:
    """Write a TOML adapter file and return its path."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_errors(tmp_path: Path, text: str) -> tuple[Path, list[str]]:
    """Load a file that must be refused; return its path and the error lines."""
    path = write(tmp_path, text)
    with pytest.raises(AdapterError) as info:
        load_adapter(path)
    lines = str(info.value).splitlines()
    assert lines == info.value.errors
    return path, lines


# --- the bundled reference target -------------------------------------------------------------


@pytest.fixture(scope="module")
def reference() -> TargetAdapter:
    """The bundled reference adapter, on port 8123 as if rtcap had started it there."""
    return load_adapter(reference_adapter_path()).with_port(8123)


def test_reference_adapter_describes_every_transport(reference: TargetAdapter) -> None:
    assert reference_adapter_path().name == "adapter.toml" and reference_adapter_path().is_file()
    assert reference.name == "reference" and reference.channel == "live"
    assert tuple(sorted(reference.transports)) == tuple(sorted(TRANSPORTS))
    urls = {name: reference.url_for(name, cursor=7) for name in TRANSPORTS}
    assert urls == {
        "poll": "http://127.0.0.1:8123/poll?channel=live&since=7",
        "longpoll": "http://127.0.0.1:8123/poll?channel=live&since=7&wait=25",
        "state": "http://127.0.0.1:8123/state?channel=live",
        "sse": "http://127.0.0.1:8123/sse?channel=live",
        "ndjson": "http://127.0.0.1:8123/ndjson?channel=live",
        "ws": "ws://127.0.0.1:8123/ws?channel=live",
        "chat": "ws://127.0.0.1:8123/ws/chat?room=lobby",
        "signal": "ws://127.0.0.1:8123/ws?channel=live&notify=1",
        "rpc": "ws://127.0.0.1:8123/ws/rpc?channel=live",
        "rest": "http://127.0.0.1:8123/latest?channel=live",
        "presence": "ws://127.0.0.1:8123/ws/chat?room=lobby",
    }
    poll, state = reference.transport("poll"), reference.transport("state")
    assert (poll.events, poll.cursor, poll.conditional) == ("events", "seq", True)
    assert (state.events, state.cursor, state.conditional) == ("events", "", True)  # validators only if the server sends some
    chat = reference.transport("chat")
    assert json.loads(chat.render_subscribe(channel="live")) == {"type": "subscribe", "channel": "live"}
    assert json.loads(chat.render_send(3, 5)) == {"type": "chat", "text": "xxxxx", "id": 3}
    assert chat.message.match == {"type": "chat"}


def test_reference_adapter_counts_cache_answers_of_polled_transports(reference: TargetAdapter) -> None:
    assert reference.transport("poll").cache_header == reference.transport("state").cache_header == "X-Cache"
    assert reference.transport("longpoll").cache_header is None  # long polls are never cached


def test_reference_adapter_publisher_and_process(reference: TargetAdapter) -> None:
    assert reference.publish.mode == "self" and reference.publish.rate == 1.0 and reference.publish.payload == 64
    process = reference.process
    assert process.kind == "started" and process.value is None
    assert process.ready_url == "/healthz" and process.stop_signal == "SIGTERM" and process.start_timeout == 20.0
    command = process.render_start(port=8123, rate=2.5, payload=16, channel="live")
    assert command == [sys.executable, "-m", "rtcap.targets.reference", "--host", "127.0.0.1", "--port", "8123",
                       "--rate", "2.5", "--payload", "16"]
    unstarted = load_adapter(reference_adapter_path())
    assert unstarted.base_url == "http://127.0.0.1:{port}"
    with pytest.raises(ValueError, match="with_port"):
        unstarted.url_for("poll", cursor=0)


def test_reference_adapter_reads_reference_messages(reference: TargetAdapter) -> None:
    body = {"channel": "live", "seq": 12, "events": [{"seq": 11, "ts": 1700000000.5, "channel": "live"},
                                                      {"seq": 12, "ts": 1700000001.5, "channel": "live"}]}
    poll = reference.transport("poll")
    assert [reference.extract("poll", e) for e in poll.events_in(json.dumps(body))] == [
        (11, 1700000000.5), (12, 1700000001.5)]
    assert poll.cursor_in(body, last_seq=11) == 12
    assert reference.extract("sse", '{"seq": 4, "ts": 1.25, "channel": "live"}', sse_id="4") == (4, 1.25)
    chat = {"type": "chat", "seq": 2, "ts": 3.0, "room": "lobby", "from": "c1", "text": "hi"}
    assert reference.is_event("chat", chat) and reference.extract("chat", chat) == (2, 3.0)
    for control in ({"type": "welcome", "id": "c1", "room": "lobby"}, {"type": "event", "seq": 9, "ts": 1.0},
                    {"type": "subscribed", "channel": "live", "seq": 0}, {"type": "pong", "ts": 1.0}):
        assert not reference.is_event("chat", control)
    with pytest.raises(AdapterError, match=r"no transport 'grpc' \(it supports: .*poll.*chat"):
        reference.transport("grpc")


def test_minimal_file_gets_the_documented_defaults(tmp_path: Path) -> None:
    adapter = load_adapter(write(tmp_path, MINIMAL))
    assert adapter.source == tmp_path / "my.toml"
    assert (adapter.channel, adapter.headers, adapter.publish.mode, adapter.process.kind) == ("live", {}, "none", "none")
    assert adapter.transport("sse").message == MessageSpec("seq", "ts", "s", "int", {}, "")
    assert adapter.url_for("sse") == "http://127.0.0.1:9000/events"


# --- strict validation ------------------------------------------------------------------------------

ERROR_CASES = {
    "unknown top-level key": ("colour = 1\n" + MINIMAL, "colour", "unknown key"),
    "misspelt key": (MINIMAL.replace("name =", "nmae ="), "nmae", "did you mean 'name'?"),
    "unknown key in a transport": (MINIMAL + "retries = 3\n", "transports.sse.retries", "unknown key"),
    "key of another transport": (MINIMAL + 'events = "items"\n', "transports.sse.events",
                                 "only used by the poll, longpoll, state, signal transports"),
    "missing base_url": (MINIMAL.replace('base_url = "http://127.0.0.1:9000"', ""), "base_url",
                         "required key is missing"),
    "ws base_url": (MINIMAL.replace("http://", "ws://"), "base_url", "expected an http:// or https:// URL"),
    "bad ts_unit": (MINIMAL + 'ts_unit = "sec"\n', "transports.sse.ts_unit",
                    "expected one of s, ms, us, ns, iso8601, got 'sec'"),
    "wrong type": (MINIMAL.replace('"mine"', "42"), "name", "expected a string, got integer 42"),
    "no transports": (MINIMAL.split("[transports")[0], "transports", "at least one of [transports.poll]"),
    "unknown transport": (MINIMAL.replace("transports.sse", "transports.grpc"), "transports.grpc",
                          "unknown transport"),
    "missing transport url": (MINIMAL.replace('url = "/events"', ""), "transports.sse.url", "required key is missing"),
    "unknown placeholder in a url": (MINIMAL.replace("/events", "/events?topic={topic}"), "transports.sse.url",
                                     "unknown placeholder {topic}"),
    "cursor in an sse url": (MINIMAL.replace("/events", "/events?since={cursor}"), "transports.sse.url",
                             "placeholder {cursor} is not allowed here (allowed here: {channel}); it belongs in poll"),
    "format spec in a url": (MINIMAL.replace("/events", "/events?c={channel:>5}"), "transports.sse.url",
                             "unknown placeholder {channel:>5}"),
    "single brace": (MINIMAL.replace("/events", "/events{"), "transports.sse.url", "bad template"),
    "ws url on an http transport": (MINIMAL.replace("/events", "ws://h/events"), "transports.sse.url",
                                    "expected a path starting with / or an absolute http:// or https:// URL"),
    "relative url without slash": (MINIMAL.replace("/events", "events"), "transports.sse.url", "starting with /"),
    "@id outside sse": (MINIMAL + '[transports.ws]\nurl = "/ws"\nseq = "@id"\n', "transports.ws.seq",
                        "exists only for sse"),
    "@id inherited by ws": ('[message]\nseq = "@id"\n' + MINIMAL + '[transports.ws]\nurl = "/ws"\n', "message.seq",
                            "exists only for sse"),
    "bad path": (MINIMAL + 'seq = "data..seq"\n', "transports.sse.seq", "empty segment"),
    "chat without send": (MINIMAL + '[transports.chat]\nurl = "/chat"\n', "transports.chat.send",
                          "required key is missing"),
    "n outside chat send": (MINIMAL + '[transports.ws]\nurl = "/ws"\nsubscribe = "{n}"\n', "transports.ws.subscribe",
                            "placeholder {n} is not allowed here"),
    "two process kinds": (MINIMAL + "[process]\npid = 12\nport = 9000\n", "process.port",
                          "conflicts with process.pid: give exactly one of"),
    "empty process table": (MINIMAL + "[process]\n", "process", "give one of pid, pidfile, port"),
    "port out of range": (MINIMAL + "[process]\nport = 70000\n", "process.port", "must be 1..65535"),
    "relative cgroup": (MINIMAL + '[process]\ncgroup = "my.slice"\n', "process.cgroup", "absolute path"),
    "stop_signal without start": (MINIMAL + "[process]\nport = 9000\nstop_signal = \"SIGINT\"\n",
                                  "process.stop_signal", "only used with process.start"),
    "bad stop_signal": (MINIMAL + '[process]\nstart = ["srv"]\nstop_signal = "TERM"\n', "process.stop_signal",
                        "expected a signal name"),
    "bad start placeholder": (MINIMAL + '[process]\nstart = ["srv", "--x={cursor}"]\n', "process.start.1",
                              "placeholder {cursor} is not allowed here"),
    "port placeholder without start": (MINIMAL.replace(":9000", ":{port}"), "base_url", "contains {port}"),
    "start port without base_url port": (MINIMAL + '[process]\nstart = ["srv", "{port}"]\n', "process.start",
                                         "uses {port} but base_url does not"),
    "publish mode http without url": (MINIMAL + '[publish]\nmode = "http"\n', "publish.url",
                                      'required when publish.mode = "http"'),
    "publish url without mode": (MINIMAL + '[publish]\nurl = "/pub"\n', "publish.url",
                                 "only used when publish.mode = \"http\" (mode is 'none')"),
    "bad publish mode": (MINIMAL + '[publish]\nmode = "push"\n', "publish.mode",
                         "expected one of http, self, none, got 'push'"),
    "zero publish rate": (MINIMAL + '[publish]\nmode = "self"\nrate = 0\n', "publish.rate", "must be > 0"),
    "unescaped JSON body": (MINIMAL + '[publish]\nmode = "http"\nurl = "/p"\nbody = \'{"seq": {seq}}\'\n',
                            "publish.body", "write literal braces, as in JSON, as {{ and }}"),
    "cursor in publish body": (MINIMAL + '[publish]\nmode = "http"\nurl = "/p"\nbody = "{cursor}"\n',
                               "publish.body", "placeholder {cursor} is not allowed here"),
    "headers inside a transport": (MINIMAL + "headers = 1\n", "transports.sse.headers", "unknown key"),
    "bad header value": ("headers = { X-Token = 5 }\n" + MINIMAL, "headers.X-Token", "expected a string"),
    "malformed class": ('class = "nocolon"\n' + MINIMAL, "class", "expected 'package.module:ClassName'"),
    "class not importable": ('class = "no_such_module_rtcap:X"\n' + MINIMAL, "class",
                             "cannot import 'no_such_module_rtcap'"),
    "class not a TargetAdapter subclass": ('class = "pathlib:Path"\n' + MINIMAL, "class",
                                           "'pathlib:Path' is not a subclass of rtcap.targets.adapter.TargetAdapter"),
    "cache_header not a header name": (MINIMAL + '[transports.poll]\nurl = "/p"\ncache_header = "X Cache"\n',
                                       "transports.poll.cache_header",
                                       "expected an HTTP header name such as X-Cache (letters, digits, - and no "
                                       "spaces), got 'X Cache'"),
    "cache_header on a stream": (MINIMAL + 'cache_header = "X-Cache"\n', "transports.sse.cache_header",
                                 "only used by the poll, longpoll, state transports"),
    "bad order": (MINIMAL + '[transports.poll]\nurl = "/p"\norder = "newest"\n', "transports.poll.order",
                  "expected one of asc, desc, got 'newest'"),
    "order of a stream": (MINIMAL + 'order = "desc"\n', "transports.sse.order",
                          "only used by the poll, longpoll, state, signal transports"),
    "misspelt publish placeholder": (MINIMAL + '[publish]\nmode = "http"\nurl = "/p"\nbody = "{count}"\n',
                                     "publish.body", "unknown placeholder {count} in '{count}' (allowed here: "
                                     "{channel}, {seq}, {counter}, {ts}, {ts_ms}, {padding})"),
}


@pytest.mark.parametrize("case", ERROR_CASES, ids=list(ERROR_CASES))
def test_each_error_names_file_and_dotted_key(tmp_path: Path, case: str) -> None:
    text, key, fragment = ERROR_CASES[case]
    path, lines = load_errors(tmp_path, text)
    assert any(line.startswith(f"{path}: {key}: ") and fragment in line for line in lines), lines


def test_exact_message_for_a_bad_enum(tmp_path: Path) -> None:
    path, lines = load_errors(tmp_path, MINIMAL + 'ts_unit = "sec"\n')
    assert lines == [f"{path}: transports.sse.ts_unit: expected one of s, ms, us, ns, iso8601, got 'sec'"]


def test_every_error_is_reported_together(tmp_path: Path) -> None:
    path, lines = load_errors(tmp_path, """
        colour = "blue"
        base_url = "ftp://x"
        [message]
        ts_unit = "sec"
        [transports.sse]
        url = "/sse?since={cursor}"
        [transports.ws]
        url = "/ws"
        send = "hi"
        [process]
        pid = 1
        pidfile = "/run/x.pid"
    """)
    keys = [line.removeprefix(f"{path}: ").split(": ")[0] for line in lines]
    assert sorted(keys) == sorted(["name", "base_url", "message.ts_unit", "transports.sse.url",
                                   "transports.ws.send", "process.pidfile", "colour"])
    assert all(line.startswith(f"{path}: ") for line in lines)


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "x"\nbase_url = \n')
    with pytest.raises(AdapterError, match=rf"^{path}: TOML syntax error: .*line 2"):
        load_adapter(path)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match="missing.toml: cannot read"):
        load_adapter(tmp_path / "missing.toml")
    assert issubclass(AdapterError, ValueError) and issubclass(FieldError, ValueError)


def test_dict_without_source_is_labelled() -> None:
    with pytest.raises(AdapterError, match=r"^<adapter>: name: required key is missing"):
        adapter_from_dict({"base_url": "http://127.0.0.1:1", "transports": {"ws": {"url": "/ws"}}})


def test_process_kinds(tmp_path: Path) -> None:
    cases = {"pid = 42": ("pid", 42), 'pidfile = "/run/s.pid"': ("pidfile", "/run/s.pid"), "port = 9000": ("port", 9000),
             'cgroup = "/sys/fs/cgroup/s.slice"': ("cgroup", "/sys/fs/cgroup/s.slice"),
             'metrics_url = "/metrics"': ("metrics", "/metrics"), "none = true": ("none", None),
             'agent_url = "http://10.0.0.5:9120"': ("agent", "http://10.0.0.5:9120")}
    for line, expected in cases.items():
        adapter = load_adapter(write(tmp_path, MINIMAL + f"[process]\n{line}\n"))
        assert (adapter.process.kind, adapter.process.value) == expected
    started = load_adapter(write(tmp_path, MINIMAL.replace(":9000", ":{port}") + """
        [process]
        start = ["srv", "--port={port}", "--channel", "{channel}"]
        port = 9000
        ready_url = "/up"
        stop_signal = "SIGINT"
        start_timeout = 5
    """))
    assert started.process == ProcessSpec("port", 9000, ["srv", "--port={port}", "--channel", "{channel}"],
                                          "SIGINT", "/up", 5.0)
    assert started.process.render_start(4000, 1.0, 64, "news") == ["srv", "--port=4000", "--channel", "news"]
    assert started.process.signal_number == 2


def test_agent_url_is_the_whole_process_table(tmp_path: Path) -> None:
    # The agent on the target's host chooses the process; rtcap starts nothing there.
    _, lines = load_errors(tmp_path, MINIMAL + '[process]\nagent_url = "http://10.0.0.5:9120"\npid = 42\n'
                                               'start = ["srv"]\n')
    assert any(line.endswith("process.agent_url: cannot be combined with process.pid: the agent on the target's "
                             "host is told which process to watch (rtcap agent --pid, --port or --cgroup); give "
                             "agent_url alone") for line in lines), lines
    assert any("process.agent_url: cannot be combined with process.start: " in line for line in lines), lines
    _, lines = load_errors(tmp_path, MINIMAL + '[process]\nagent_url = "http://10.0.0.5:9120"\nscope = "group"\n')
    assert any("process.scope: only for a process rtcap reads itself" in line and "--scope" in line
               for line in lines), lines
    for bad in ("/agent", "https://10.0.0.5:9120", "http://10.0.0.5:9120/sample", "http://{host}:1"):
        _, lines = load_errors(tmp_path, MINIMAL + f'[process]\nagent_url = "{bad}"\n')
        assert any("process.agent_url: expected the agent's address as http://host:port" in line
                   for line in lines), (bad, lines)


# --- message fields ---------------------------------------------------------------------------------------


def test_extract_nested_paths_and_list_indices() -> None:
    message = {"data": {"seq": 5, "meta": {"at": 12.5}}, "items": [{"id": 1}, {"id": 2, "t": 3.0}]}
    assert MessageSpec(seq="data.seq", ts="data.meta.at").extract(message) == (5, 12.5)
    assert MessageSpec(seq="items.1.id", ts="items.-1.t").extract(message) == (2, 3.0)
    assert MessageSpec(seq="items.0.id", ts="").extract(json.dumps(message)) == (1, None)
    assert MessageSpec(seq="0.n", ts="").extract([{"n": "7"}]) == (7, None)  # digit strings are int seqs


def test_extract_sse_id_and_string_seq() -> None:
    spec = MessageSpec(seq="@id", ts="")
    assert spec.extract("plain text, not JSON", sse_id="41") == (41, None)
    with pytest.raises(FieldError, match="no id: line"):
        spec.extract("{}", sse_id=None)
    text = MessageSpec(seq="@id", seq_type="string", ts="t")
    assert text.extract({"t": 1}, sse_id="1712-0") == ("1712-0", 1.0)
    assert MessageSpec(seq="id", seq_type="string").extract({"id": 17, "ts": 1}) == ("17", 1.0)
    with pytest.raises(FieldError, match=r"seq at 'seq' is .abc., expected an integer"):
        MessageSpec().extract({"seq": "abc", "ts": 1})
    with pytest.raises(FieldError, match="expected an integer"):
        MessageSpec().extract({"seq": True, "ts": 1})


@pytest.mark.parametrize(("unit", "value", "expected"), [
    ("s", 1700000000.25, 1700000000.25),
    ("s", "1700000000.25", 1700000000.25),
    ("ms", 1700000000250, 1700000000.25),
    ("us", 1700000000250000, 1700000000.25),
    ("ns", 1700000000250000000, 1700000000.25),
    ("iso8601", "2023-11-14T22:13:20.25Z", 1700000000.25),
    ("iso8601", "2023-11-14T23:13:20.250+01:00", 1700000000.25),
    ("iso8601", "2023-11-14T22:13:20.25", 1700000000.25),  # naive means UTC
])
def test_extract_ts_units(unit: str, value: Any, expected: float) -> None:
    seq, ts = MessageSpec(ts_unit=unit).extract({"seq": 1, "ts": value})
    assert seq == 1 and ts is not None and math.isclose(ts, expected, abs_tol=1e-6)


def test_extract_bad_ts() -> None:
    with pytest.raises(FieldError, match="expected an ISO 8601 time"):
        MessageSpec(ts_unit="iso8601").extract({"seq": 1, "ts": 1700000000})
    with pytest.raises(FieldError, match="expected a number"):
        MessageSpec(ts_unit="ms").extract({"seq": 1, "ts": "soon"})


def test_payload_wrapper() -> None:
    spec = MessageSpec(payload="data", seq="seq", ts="ts", match={"event": "update"})
    wrapped = {"event": "update", "channel": "c", "data": {"seq": 3, "ts": 4.5}}
    assert spec.is_event(wrapped) and spec.extract(wrapped) == (3, 4.5)
    as_text = {"event": "update", "data": json.dumps({"seq": 6, "ts": 7.0})}  # Pusher-style JSON in a string
    assert spec.extract(json.dumps(as_text)) == (6, 7.0)
    with pytest.raises(FieldError, match="payload path 'data' not found"):
        spec.extract({"event": "update"})


def test_match_filters_events(tmp_path: Path) -> None:
    adapter = load_adapter(write(tmp_path, MINIMAL + 'match = { kind.name = "tick", live = true, "v.0" = 1 }\n'))
    spec = adapter.transport("sse").message
    assert spec.match == {"kind.name": "tick", "live": True, "v.0": 1}
    assert spec.is_event({"kind": {"name": "tick"}, "live": True, "v": [1]})
    assert spec.is_event(json.dumps({"kind": {"name": "tick"}, "live": True, "v": [1, 2]}))
    assert not spec.is_event({"kind": {"name": "tock"}, "live": True, "v": [1]})
    assert not spec.is_event({"kind": {"name": "tick"}, "live": 1, "v": [1]})  # true is not 1
    assert not spec.is_event({"live": True})
    assert not spec.is_event("not json")
    assert MessageSpec().is_event("anything")


def test_field_error_names_the_path_and_truncates_the_message() -> None:
    message = {"data": {"other": 1}, "blob": "y" * 5000}
    with pytest.raises(FieldError) as info:
        MessageSpec(seq="data.seq").extract(message)
    text = str(info.value)
    assert "seq path 'data.seq' not found in message: {" in text
    assert len(text) < 400 and "chars)" in text
    with pytest.raises(FieldError, match="ts path 'when' not found"):
        MessageSpec(ts="when").extract({"seq": 1})


def test_events_and_cursor_in_polled_bodies() -> None:
    spec = TransportSpec("poll", "/p?since={cursor}", events="result.items", cursor="result.next")
    body = {"result": {"items": [{"seq": 1}], "next": "abc"}}
    assert spec.events_in(body) == [{"seq": 1}] and spec.cursor_in(body, 1) == "abc"
    assert TransportSpec("poll", "/p", events="").events_in('[{"seq": 1}, {"seq": 2}]') == [{"seq": 1}, {"seq": 2}]
    assert TransportSpec("state", "/s").events_in({"seq": 3}) == [{"seq": 3}]  # the body is one event
    assert TransportSpec("poll", "/p", events="events").events_in({"events": None}) == []
    assert TransportSpec("poll", "/p").cursor_in({}, 9) == 9


def test_order_desc_lists_a_newest_first_page_oldest_first(tmp_path: Path) -> None:
    adapter = load_adapter(write(tmp_path, MINIMAL + """
        [transports.poll]
        url = "/latest?since={cursor}"
        events = "items"
        order = "desc"
        [transports.state]
        url = "/state"
    """))
    page = {"items": [{"seq": 9}, {"seq": 8}, {"seq": 7}]}
    assert [e["seq"] for e in adapter.transport("poll").events_in(page)] == [7, 8, 9]
    assert adapter.transport("state").order == "asc"
    assert adapter.transport("state").events_in([{"seq": 1}, {"seq": 2}]) == [{"seq": 1}, {"seq": 2}]


# --- templates, publishing and URLs ---------------------------------------------------------------------


def test_publish_counter_is_the_publishers_count_and_seq_as_given(tmp_path: Path) -> None:
    adapter = load_adapter(write(tmp_path, MINIMAL + """
        [publish]
        mode = "http"
        url = "/publish?n={counter}"
        headers = { X-Seq = "{seq}" }
        body = '{{"seq": {seq}, "n": {counter}}}'
    """))
    _, url, headers, body = adapter.publish.render(1_700_000_000_002, 0.0, "live", counter=2)
    assert url.endswith("/publish?n=2") and headers["X-Seq"] == "1700000000002"
    assert json.loads(body) == {"seq": 1_700_000_000_002, "n": 2}
    # A caller that passes no counter (an older publisher) gets its seq in both.
    assert json.loads(adapter.publish.render(5, 0.0, "live")[3]) == {"seq": 5, "n": 5}


def test_publish_render_substitutes_and_escapes(tmp_path: Path) -> None:
    adapter = load_adapter(write(tmp_path, """
        name = "pub"
        base_url = "https://example.test/api/"
        channel = "news feed"
        headers = { Authorization = "Bearer {{token}}", Content-Type = "text/plain", X-Channel = "{channel}" }
        [publish]
        mode = "http"
        method = "PUT"
        url = "/publish/{channel}?at={ts_ms}"
        headers = { content-type = "application/json", X-Seq = "{seq}" }
        body = '{{"seq": {seq}, "ts": {ts}, "ts_ms": {ts_ms}, "pad": "{padding}", "channel": "{channel}"}}'
        payload = 8
        [transports.poll]
        url = "/poll?since={cursor}"
    """))
    assert adapter.headers == {"Authorization": "Bearer {token}", "Content-Type": "text/plain", "X-Channel": "news feed"}
    method, url, headers, body = adapter.publish.render(seq=7, ts=1700000000.1234567, channel="news feed")
    assert method == "PUT"
    assert url == "https://example.test/api/publish/news%20feed?at=1700000000123"
    assert headers == {"Authorization": "Bearer {token}", "X-Channel": "news feed",
                       "content-type": "application/json", "X-Seq": "7"}
    assert b'"ts": 1700000000.123457,' in body
    assert json.loads(body) == {"seq": 7, "ts": 1700000000.123457, "ts_ms": 1700000000123, "pad": "x" * 8,
                                "channel": "news feed"}
    absolute = PublishSpec(mode="http", url="http://127.0.0.1:7000/p?s={seq}", base_url="http://127.0.0.1:1")
    assert absolute.render(1, 0.0, "c")[1:] == ("http://127.0.0.1:7000/p?s=1", {}, b"")
    with pytest.raises(ValueError, match="rtcap sends no publish requests"):
        PublishSpec(mode="self").render(1, 0.0, "c")


def test_render_url_relative_absolute_and_ws_derivation() -> None:
    poll = TransportSpec("poll", "/poll?c={channel}&since={cursor}")
    assert poll.render_url("http://h:1", channel="a/b", cursor="x&y=1") == "http://h:1/poll?c=a%2Fb&since=x%26y%3D1"
    assert poll.render_url("http://h:1/prefix/", channel="c", cursor=0) == "http://h:1/prefix/poll?c=c&since=0"
    assert poll.render_url("http://h:{port}", channel="c", cursor=0, port=5) == "http://h:5/poll?c=c&since=0"
    with pytest.raises(ValueError, match=r"no value given for placeholder \{cursor\}"):
        poll.render_url("http://h:1", channel="c")
    ws = TransportSpec("ws", "/ws?c={channel}")
    assert ws.render_url("http://h:1", channel="c") == "ws://h:1/ws?c=c"
    assert ws.render_url("https://h", channel="c") == "wss://h/ws?c=c"
    assert TransportSpec("ws", "wss://other/feed").render_url("http://h:1") == "wss://other/feed"
    assert TransportSpec("chat", "https://other/chat?r={room}", room="r1").render_url("http://h") == "wss://other/chat?r=r1"
    assert TransportSpec("sse", "https://other/sse").render_url("http://h:1") == "https://other/sse"


def test_with_base_url_copies(tmp_path: Path) -> None:
    adapter = load_adapter(write(tmp_path, MINIMAL + '[publish]\nmode = "http"\nurl = "/pub"\n'))
    moved = adapter.with_base_url("http://127.0.0.1:9100/")
    assert moved.base_url == "http://127.0.0.1:9100" and adapter.base_url == "http://127.0.0.1:9000"
    assert moved.publish.render(1, 0.0, "live")[1] == "http://127.0.0.1:9100/pub"
    assert moved.url_for("sse") == "http://127.0.0.1:9100/events" and moved.transports is adapter.transports
    with pytest.raises(ValueError, match="absolute http"):
        adapter.with_base_url("127.0.0.1:9100")


# --- the Python route: class = "module:Name" ---------------------------------------------------------


class CountingAdapter(TargetAdapter):
    """Reads `n` as the seq of every message and has no publish time."""

    def extract(self, transport: str, message: Any, sse_id: str | None = None) -> tuple[int | str, float | None]:
        return int(message.split(":")[1]), None

    def is_event(self, transport: str, message: Any) -> bool:
        return message.startswith("n:")


def test_class_adapter_overrides_extract(tmp_path: Path) -> None:
    module = f"rtcap_test_adapter_{uuid.uuid4().hex}"  # found next to the TOML file, which goes first on sys.path
    (tmp_path / f"{module}.py").write_text(textwrap.dedent("""
        from rtcap.targets.adapter import TargetAdapter

        class Odd(TargetAdapter):
            def extract(self, transport, message, sse_id=None):
                seq, ts_ms = message.split("|")
                return int(seq), int(ts_ms) / 1000
    """), encoding="utf-8")
    adapter = load_adapter(write(tmp_path, f'class = "{module}:Odd"\n' + MINIMAL))
    assert type(adapter).__name__ == "Odd" and isinstance(adapter, TargetAdapter)
    assert adapter.extract("sse", "12|1500") == (12, 1.5)
    assert adapter.is_event("sse", "12|1500")  # the declarative default still applies
    assert str(tmp_path) not in sys.path
    moved = adapter.with_base_url("http://127.0.0.1:9001")
    assert type(moved).__name__ == "Odd" and moved.extract("sse", "1|0") == (1, 0.0)

    same_tree = load_adapter(write(tmp_path, f'class = "{__name__}:CountingAdapter"\n' + MINIMAL, "b.toml"))
    assert isinstance(same_tree, CountingAdapter)
    assert same_tree.is_event("sse", "n:4") and same_tree.extract("sse", "n:4") == (4, None)
    assert same_tree.transport("sse").url == "/events"


def test_readme_examples_load(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "targets" / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```(toml|python)\n(.*?)```", readme, re.DOTALL)
    files = [text for lang, text in blocks if lang == "toml" and text.startswith("name =")]
    assert len(files) == 2
    walkthrough = load_adapter(write(tmp_path, files[0]))
    event = {"kind": "update", "item": {"id": 17, "at": "2024-05-01T12:00:00.250Z"}}
    assert walkthrough.is_event("sse", event) and not walkthrough.is_event("ws", {"kind": "ack"})
    assert walkthrough.extract("ws", json.dumps(event)) == (17, 1714564800.25)
    assert walkthrough.transport("ws").render_subscribe(channel="live") == '{"op": "join", "topic": "live"}'
    assert json.loads(walkthrough.publish.render(1, 0.0, "live")[3]) == {"text": "x" * 64}
    module = next(text for lang, text in blocks if lang == "python" and "class MyAdapter" in text)
    (tmp_path / "my_adapter.py").write_text(module, encoding="utf-8")
    try:
        custom = load_adapter(write(tmp_path, files[1], "custom.toml"))
        assert custom.extract("ws", "17|1714564800250") == (17, 1714564800.25)
        assert custom.is_event("ws", "1|2") and not custom.is_event("ws", "{}")
    finally:
        sys.modules.pop("my_adapter", None)


def test_port_placeholder_observes_the_picked_port(tmp_path: Path) -> None:
    text = MINIMAL.replace(":9000", ":{port}") + '[process]\nstart = ["launcher", "{port}"]\nport = "{port}"\n'
    adapter = load_adapter(write(tmp_path, text))
    assert (adapter.process.kind, adapter.process.value) == ("port", "{port}")
    _, lines = load_errors(tmp_path, MINIMAL + '[process]\nport = "{port}"\n')
    assert any('process.port: "{port}" (the port rtcap picked) needs process.start' in line for line in lines)
    _, lines = load_errors(tmp_path, MINIMAL + '[process]\nstart = ["launcher"]\nport = "{port}"\n')
    assert any("process.port: uses {port} but base_url does not" in line for line in lines)
    _, lines = load_errors(tmp_path, MINIMAL + '[process]\nport = "9000"\n')
    assert any("process.port: expected an integer, got string '9000'" in line for line in lines)


def test_ws_resume_url_renders_with_the_last_seq(tmp_path) -> None:
    from rtcap.targets.adapter import load_adapter, reference_adapter_path

    adapter = load_adapter(reference_adapter_path()).with_port(8123)
    url = adapter.transport("ws").render_resume_url(adapter.base_url, channel="live", cursor=41)
    assert url == "ws://127.0.0.1:8123/ws?channel=live&since=41"


# --- the WebSocket patterns: signal, rpc, rest, presence ------------------------------------------


def test_reference_adapter_reads_notifications_responses_and_indicators(reference: TargetAdapter) -> None:
    signal = reference.transport("signal")
    assert signal.render_fetch(reference.base_url, channel="live", cursor=4) == "http://127.0.0.1:8123/poll?channel=live&since=4"
    assert signal.notice_seq('{"type":"changed","seq":9,"ts":1.0}') == 9
    assert signal.notice_seq({"seq": 9, "ts": 1.0}) is None and not signal.is_notice({"type": "pong"})
    rpc = reference.transport("rpc")
    assert json.loads(rpc.render_text("request", id=7, channel="live")) == {"type": "request", "id": 7, "op": "get",
                                                                           "channel": "live"}
    assert rpc.response_of({"type": "response", "id": 7, "status": 200}) == (7, True)
    assert rpc.response_of({"type": "response", "id": 8, "status": 400}) == (8, False)
    assert rpc.response_of({"type": "response", "id": 8}) == (8, False)  # no status: not a success
    assert rpc.response_of({"type": "error", "error": "no id"}) is None
    presence = reference.transport("presence")
    typing = json.loads(presence.render_text("send", n=2, client="c1", room="lobby-0"))
    assert typing == {"type": "typing", "active": True, "client": "c1", "n": 2}
    # A list in `match` means any of its values: typing and presence are both indicators, the welcome is not.
    assert reference.is_event("presence", {"type": "presence", "seq": 1, "ts": 1.0})
    assert reference.is_event("presence", {"type": "typing", "seq": 2, "ts": 1.0})
    assert not reference.is_event("presence", {"type": "welcome", "id": "c1"})


@pytest.mark.parametrize(("table", "error"), [
    ('[transports.signal]\nurl = "/ws"\n', "transports.signal.fetch: required key is missing"),
    ('[transports.signal]\nurl = "/ws"\nfetch = "/poll?since={n}"\n', "transports.signal.fetch: placeholder {n} is not allowed here"),
    ('[transports.signal]\nurl = "/ws"\nfetch = "ws://h/x"\n', "transports.signal.fetch: expected a path starting with /"),
    ('[transports.signal]\nurl = "/ws"\nfetch = "/p"\nnotify_match = "changed"\n', "transports.signal.notify_match: expected a table"),
    ('[transports.rpc]\nurl = "/ws/rpc"\n', "transports.rpc.request: required key is missing"),
    ('[transports.rpc]\nurl = "/ws/rpc"\nrequest = \'{{"id": {cursor}}}\'\n', "transports.rpc.request: placeholder {cursor} is not allowed here"),
    ('[transports.rpc]\nurl = "/ws/rpc"\nrequest = "r{id}"\nresponse_id = ""\n', "transports.rpc.response_id: must not be empty"),
    ('[transports.rest]\nurl = "/latest"\nsend = "x"\n', "transports.rest.send: only used by the chat, presence transports"),
    ('[transports.rest]\nurl = "ws://h/latest"\n', "transports.rest.url: expected a path starting with /"),
    ('[transports.presence]\nurl = "/ws/chat?room={room}"\nsend = "{padding}"\n', "transports.presence.send: placeholder {padding} is not allowed here"),
    ('[transports.presence]\nurl = "/ws/chat"\nsend = "t"\nsender = "a..b"\n', "transports.presence.sender: bad path 'a..b'"),
    ('[transports.ws]\nurl = "/ws"\nrequest = "r"\n', "transports.ws.request: only used by the rpc transports"),
])
def test_pattern_keys_are_validated_with_clear_errors(tmp_path: Path, table: str, error: str) -> None:
    path, lines = load_errors(tmp_path, f'name = "x"\nbase_url = "http://127.0.0.1:9"\n{table}')
    assert any(line.startswith(f"{path}: {error}") for line in lines), lines
