"""Target adapters: how rtcap reaches ANY server, per transport, and how it reads the server's messages.

A declarative TOML file covers the common case (see targets/README.md); a TargetAdapter subclass named by
`class = "pkg.mod:Name"` in that file covers odd message formats by overriding extract() / is_event().
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import re
import signal
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .adapter_fields import (
    SEQ_TYPES,
    SSE_ID,
    TS_UNITS,
    FieldError,
    KeyReader,
    MessageSpec,
    agent_url_problem,
    base_url_problem,
    coerce_seq,
    cursor_in,
    decode,
    events_in,
    flatten,
    join_url,
    nonempty,
    path_problem,
    positive,
    render_template,
    resolve,
    template_problem,
    url_problem,
)
from .transports import BY_NAME, NAMES, lookup

__all__ = [
    "TRANSPORTS", "AdapterError", "FieldError", "MessageSpec", "ProcessSpec", "PublishSpec", "TargetAdapter",
    "TransportSpec", "adapter_from_dict", "load_adapter", "reference_adapter_path", "render_template",
]

TRANSPORTS = NAMES
"""The transports an adapter may declare: every one in targets/transports.py."""


class AdapterError(ValueError):
    """An adapter file is unusable; the message has one `FILE: KEY: problem` line per error found."""

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors = errors if errors is not None else message.splitlines()


@dataclass(frozen=True)
class TransportSpec:
    """How to reach one transport of a target, and how to read its messages."""

    name: str
    url: str
    message: MessageSpec = field(default_factory=MessageSpec)
    events: str = ""
    cursor: str = ""
    order: str = "asc"
    conditional: bool = True
    cache_header: str | None = None
    subscribe: str | None = None
    room: str = "lobby"
    send: str | None = None
    resume_url: str | None = None
    fetch: str | None = None
    notify_match: dict[str, Any] = field(default_factory=dict)
    notify_seq: str = "seq"
    request: str | None = None
    response_id: str = "id"
    response_match: dict[str, Any] = field(default_factory=dict)
    status: str = ""
    presence: str | None = None
    sender: str = ""

    def __post_init__(self) -> None:
        lookup(self.name)  # UnknownTransport: a spec for a transport rtcap cannot measure is an error

    @property
    def websocket(self) -> bool:
        """True for the WebSocket transports (targets/transports.py)."""
        return BY_NAME[self.name].websocket

    def render_fetch(self, base_url: str, **values: Any) -> str:
        """Signal: absolute http(s) URL fetching the events after {cursor}."""
        if self.fetch is None:
            raise ValueError(f"transport {self.name!r} has no fetch url")
        return join_url(base_url, render_template(self.fetch, url=True, **values))

    def render_text(self, key: str, **values: Any) -> str | None:
        """The text template `key` (request, presence...) filled with `values`, or None if not configured."""
        template = getattr(self, key)
        if template is None:
            return None
        values.setdefault("room", self.room)
        return render_template(template, **values)

    def notice_seq(self, message: Any) -> int | str | None:
        """Signal: the seq a notification announces (None: not a notification, or it names no seq)."""
        if not self.notify_seq or not self.is_notice(message):
            return None
        obj = decode(message, "notification")
        return coerce_seq(resolve(obj, self.notify_seq, "notify_seq", message), self.message.seq_type,
                          f"at {self.notify_seq!r}")

    def is_notice(self, message: Any) -> bool:
        """Signal: True if a WebSocket message is a notification that something changed."""
        return MessageSpec(match=self.notify_match).is_event(message)

    def response_of(self, message: Any) -> tuple[Any, bool] | None:
        """RPC: (request id, succeeded) of a response message, or None if the message is not a response."""
        if not MessageSpec(match=self.response_match).is_event(message):
            return None
        obj = decode(message, "response")
        try:
            found = resolve(obj, self.response_id, "response_id", message)
        except FieldError:
            return None  # no id: an error frame or a push, not the answer to a request
        if not self.status:
            return found, True
        try:
            status = resolve(obj, self.status, "status", message)
        except FieldError:
            return found, False  # a response without its status field cannot be called a success
        number = status if isinstance(status, int) and not isinstance(status, bool) else (
            int(status) if isinstance(status, str) and status.isdigit() else 0)
        return found, 200 <= number < 300

    def render_url(self, base_url: str, **values: Any) -> str:
        """Absolute URL (ws(s) for ws/chat); values fill the placeholders, `port` also fills base_url."""
        values.setdefault("room", self.room)
        if values.get("port") is not None:
            base_url = base_url.replace("{port}", str(values["port"]))
        values.pop("port", None)
        return join_url(base_url, render_template(self.url, url=True, **values), self.websocket)

    def render_resume_url(self, base_url: str, **values: Any) -> str:
        """Absolute URL to reconnect to after a drop, with {cursor} = the last seq received."""
        if self.resume_url is None:
            raise ValueError(f"transport {self.name!r} has no resume_url")
        values.setdefault("room", self.room)
        return join_url(base_url, render_template(self.resume_url, url=True, **values), self.websocket)

    def render_subscribe(self, **values: Any) -> str | None:
        """The text to send after the WebSocket handshake, or None."""
        if self.subscribe is None:
            return None
        values.setdefault("room", self.room)
        return render_template(self.subscribe, **values)

    def render_send(self, n: int, padding: int, **values: Any) -> str:
        """Chat message number `n` with `padding` bytes of {padding}."""
        if self.send is None:
            raise ValueError(f"transport {self.name!r} has no send template")
        values.setdefault("room", self.room)
        return render_template(self.send, n=n, padding="x" * padding, **values)

    def events_in(self, body: Any) -> list[Any]:
        """The events of a polled response body (poll, longpoll, state, signal's fetch), oldest first.

        A body listed newest first (`order = "desc"`, a "latest N" page) is reversed here, once, so every
        reader sees the stream in its order and takes the last event's seq as the cursor."""
        found = events_in(body, self.events)
        return found[::-1] if self.order == "desc" else found

    def cursor_in(self, body: Any, last_seq: Any) -> Any:
        """The cursor for the next poll: the `cursor` path of the body, or `last_seq` if none is configured."""
        return cursor_in(body, self.cursor, last_seq)


@dataclass(frozen=True)
class PublishSpec:
    """Who publishes events during a run, and for mode "http" the request rtcap sends for each."""

    mode: str = "none"
    method: str = "POST"
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    rate: float = 1.0
    payload: int = 64
    base_url: str = ""  # set from the adapter: relative urls resolve against it
    follow_redirects: bool = False
    """A copy of the adapter's `follow_redirects`, set by the adapter (like base_url): the publisher sees only
    this spec. Not a `[publish]` key."""

    def render(self, seq: int, ts: float, channel: str,
               counter: int | None = None) -> tuple[str, str, dict[str, str], bytes]:
        """(method, absolute URL, headers, body bytes) of the request publishing event `seq` at time `ts`.

        `{seq}` renders `seq` as given; `{counter}` renders `counter` (the publisher's own 1, 2, 3...), or `seq`
        when the caller passes none. Callers give `seq` numbers that keep rising across every publish to a
        target (see targets/README.md, Placeholders), so a server storing them never sees its numbering restart.
        """
        if self.mode != "http":
            raise ValueError(f"publish mode is {self.mode!r}: rtcap sends no publish requests")
        values = {"channel": channel, "seq": seq, "counter": seq if counter is None else counter, "ts": f"{ts:.6f}",
                  "ts_ms": round(ts * 1000), "padding": "x" * self.payload}
        url = join_url(self.base_url, render_template(self.url, url=True, **values))
        headers = {key: render_template(value, **values) for key, value in self.headers.items()}
        return self.method, url, headers, render_template(self.body, **values).encode()


@dataclass(frozen=True)
class ProcessSpec:
    """How rtcap observes (and optionally starts) the server process."""

    kind: str = "none"  # pid | pidfile | port | cgroup | metrics | agent | none | started
    value: int | str | None = None
    start: list[str] | None = None
    stop_signal: str = "SIGTERM"
    ready_url: str | None = None
    start_timeout: float = 20.0
    scope: str = "tree"
    """Which processes make the server: "tree" (the observed process and its descendants), "group" (every
    process in its process group, e.g. the siblings a launcher started) or "port" (the process alone)."""

    def render_start(self, port: int, rate: float, payload: int, channel: str) -> list[str]:
        """The start command with {port} {python} {rate} {payload} {channel} filled in."""
        if self.start is None:
            raise ValueError("this target has no process.start command")
        values = {"port": port, "python": sys.executable, "rate": rate, "payload": payload, "channel": channel}
        return [render_template(arg, **values) for arg in self.start]

    @property
    def signal_number(self) -> int:
        """The numeric value of stop_signal."""
        return int(signal.Signals[self.stop_signal])


@dataclass(kw_only=True, eq=False)
class TargetAdapter:
    """A server under test: its URLs, publisher, message fields and process. Subclass to override hooks."""

    name: str
    base_url: str
    channel: str = "live"
    headers: dict[str, str] = field(default_factory=dict)
    transports: dict[str, TransportSpec]
    publish: PublishSpec = field(default_factory=PublishSpec)
    process: ProcessSpec = field(default_factory=ProcessSpec)
    follow_redirects: bool = False
    """Follow same-origin redirects of polls, fetches and publishes (off: every redirect is an error)."""
    source: Path | None = None

    def __post_init__(self) -> None:
        # The publisher only gets the PublishSpec: it carries the adapter's base_url and redirect flag.
        self.publish = dataclasses.replace(self.publish, base_url=self.publish.base_url or self.base_url,
                                           follow_redirects=self.follow_redirects)

    def transport(self, name: str) -> TransportSpec:
        """The spec of transport `name`; AdapterError listing the supported ones if the target lacks it."""
        try:
            return self.transports[name]
        except KeyError:
            supported = ", ".join(self.transports) or "none"
            message = f"target {self.name!r} has no transport {name!r} (it supports: {supported})"
            raise AdapterError(f"{self.source or self.name}: {message}") from None

    def url_for(self, transport: str, **values: Any) -> str:
        """Absolute URL of `transport` on this target, with the adapter's channel unless given."""
        values.setdefault("channel", self.channel)
        return self.transport(transport).render_url(self.base_url, **values)

    def with_base_url(self, url: str) -> TargetAdapter:
        """A copy reaching the server at `url` (e.g. a started server on another port)."""
        if not re.match(r"^https?://[^/?#{}]+", url):
            raise ValueError(f"base URL must be an absolute http(s) URL, got {url!r}")
        new = copy.copy(self)
        new.base_url = url.rstrip("/")
        new.publish = dataclasses.replace(self.publish, base_url=new.base_url)
        return new

    def with_port(self, port: int) -> TargetAdapter:
        """A copy whose base_url has {port} replaced by `port`."""
        return self.with_base_url(self.base_url.replace("{port}", str(port)))

    def extract(self, transport: str, message: Any, sse_id: str | None = None) -> tuple[int | str, float | None]:
        """(seq, publish unix time or None) of one event received over `transport`; FieldError if unreadable."""
        return self.transport(transport).message.extract(message, sse_id)

    def is_event(self, transport: str, message: Any) -> bool:
        """True if a message received over `transport` is an event (not a control message)."""
        return self.transport(transport).message.is_event(message)


# --- validation: every problem is collected as (dotted key, message), then reported together ---

_PUBLISH_VALUES = ("channel", "seq", "counter", "ts", "ts_ms", "padding")
_START_VALUES = ("port", "python", "rate", "payload", "channel")
_PROCESS_KINDS = {"pid": "pid", "pidfile": "pidfile", "port": "port", "cgroup": "cgroup", "metrics_url": "metrics",
                  "agent_url": "agent", "none": "none"}
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_ORDERS = ("asc", "desc")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_CLASS_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def _header_name_problem(name: str) -> str | None:
    """Why `name` is not an HTTP header name (an RFC 9110 token), or None."""
    if _HEADER_NAME.match(name):
        return None
    return f"expected an HTTP header name such as X-Cache (letters, digits, - and no spaces), got {name!r}"


def _seq_problem(path: str) -> str | None:
    return nonempty(path) or (None if path == SSE_ID else path_problem(path))


def _message_keys(table: KeyReader) -> dict[str, tuple[Any, str]]:
    """The message keys present (and valid) in `table`: name -> (value, dotted key)."""
    values = {
        "seq": table.get("seq", "str", check=_seq_problem),
        "ts": table.get("ts", "str", path=True),
        "ts_unit": table.get("ts_unit", "str", choices=TS_UNITS),
        "seq_type": table.get("seq_type", "str", choices=SEQ_TYPES),
        "match": table.get("match", "table"),
        "payload": table.get("payload", "str", path=True),
    }
    if values["match"] is not None:
        values["match"] = flatten(values["match"])
    return {name: (value, table.key(name)) for name, value in values.items() if value is not None}


def _transport(name: str, table: KeyReader, inherited: dict[str, tuple[Any, str]]) -> TransportSpec | None:
    record = BY_NAME[name]
    schemes = ("ws", "wss", "http", "https") if record.websocket else ("http", "https")
    url = table.get("url", "str", required=True, template=record.template_values("url"),
                    check=lambda u: url_problem(u, schemes))
    getters = {
        "events": lambda: table.get("events", "str", "", path=True),
        "cursor": lambda: table.get("cursor", "str", "", path=True),
        "order": lambda: table.get("order", "str", "asc", choices=_ORDERS),
        "conditional": lambda: table.get("conditional", "bool", True),
        "cache_header": lambda: table.get("cache_header", "str", check=_header_name_problem),
        "subscribe": lambda: table.get("subscribe", "str", template=record.template_values("subscribe")),
        "room": lambda: table.get("room", "str", "lobby", check=nonempty),
        "send": lambda: table.get("send", "str", required=True, template=record.template_values("send")),
        "fetch": lambda: table.get("fetch", "str", required=True, template=("channel", "cursor"), check=url_problem),
        "notify_match": lambda: flatten(table.get("notify_match", "table", {})),
        "notify_seq": lambda: table.get("notify_seq", "str", "seq", path=True),
        "request": lambda: table.get("request", "str", required=True, template=("channel", "id", "n")),
        "response_id": lambda: table.get("response_id", "str", "id", check=nonempty, path=True),
        "response_match": lambda: flatten(table.get("response_match", "table", {})),
        "status": lambda: table.get("status", "str", "", path=True),
        "presence": lambda: table.get("presence", "str", template=("channel", "room", "client")),
        "sender": lambda: table.get("sender", "str", "", path=True),
        "resume_url": lambda: table.get("resume_url", "str", template=("channel", "cursor"),
                                        check=lambda u: url_problem(u, schemes)),
    }
    extra = {key: getters[key]() for key in record.adapter_keys}
    message = {**inherited, **_message_keys(table)}
    for key in [key for key in table.data if key not in table.known]:
        if owners := [other.name for other in BY_NAME.values() if key in other.adapter_keys]:
            table.known.append(key)
            table.error(key, f"only used by the {', '.join(owners)} transports")
    table.finish()
    seq, seq_key = message["seq"]
    if seq == SSE_ID and name != "sse":
        table.errors.append((seq_key, f"'@id' (the SSE id: line) exists only for sse: give {name} a JSON path"))
    if url is None:
        return None
    return TransportSpec(name, url, MessageSpec(**{key: value for key, (value, _) in message.items()}), **extra)


def _publish(table: KeyReader, headers: dict[str, str]) -> PublishSpec:
    mode = table.get("mode", "str", "none", choices=("http", "self", "none"))
    if table.data.get("mode", "none") == mode != "http":  # a valid mode that is not http
        for key in ("method", "url", "headers", "body"):
            if table.has(key):
                table.error(key, f'only used when publish.mode = "http" (mode is {mode!r})')
    if mode == "http" and not table.has("url"):
        table.error("url", 'required when publish.mode = "http"')
    method = table.get("method", "str", "POST", choices=_METHODS)
    url = table.get("url", "str", "", template=_PUBLISH_VALUES, check=url_problem)
    own = table.headers("headers", _PUBLISH_VALUES)
    body = table.get("body", "str", "", template=_PUBLISH_VALUES)
    rate = table.get("rate", "number", 1.0, check=positive)
    payload = table.get("payload", "int", 64, check=lambda v: None if v >= 0 else f"must be >= 0, got {v}")
    table.finish()
    overridden = {key.lower() for key in own}
    # The adapter's headers are already rendered: escape their braces before they become templates again.
    common = {k: v.replace("{", "{{").replace("}", "}}") for k, v in headers.items() if k.lower() not in overridden}
    merged = {**common, **own}
    return PublishSpec(mode, method, url, merged, body, float(rate), payload)


def _port_problem(port: int) -> str | None:
    return None if 1 <= port <= 65535 else f'must be 1..65535 (or "{{port}}" with start), got {port}'


PROCESS_SCOPES = ("tree", "group", "port")


def _process(table: KeyReader, present: bool) -> ProcessSpec:
    values = {
        "pid": table.get("pid", "int", check=positive),
        "pidfile": table.get("pidfile", "str", check=nonempty),
        "port": table.get("port", "int", check=_port_problem) if table.data.get("port") != "{port}" else "{port}",
        "cgroup": table.get("cgroup", "str", check=lambda v: None if v.startswith("/") else
                            f"expected an absolute path such as /sys/fs/cgroup/my.slice, got {v!r}"),
        "metrics_url": table.get("metrics_url", "str", check=url_problem),
        "agent_url": table.get("agent_url", "str", check=agent_url_problem),
        "none": table.get("none", "bool"),
    }
    if "port" not in table.known:  # "{port}" skipped the typed getter
        table.known.insert(2, "port")
    given = [key for key in _PROCESS_KINDS if table.has(key) and table.data[key] is not False]
    if "agent_url" in given and len(given) > 1:
        others = " and ".join(f"process.{key}" for key in given if key != "agent_url")
        table.error("agent_url", f"cannot be combined with {others}: the agent on the target's host is told which "
                                 "process to watch (rtcap agent --pid, --port or --cgroup); give agent_url alone")
    else:
        for other in given[1:]:
            table.error(other, f"conflicts with process.{given[0]}: give exactly one of {', '.join(_PROCESS_KINDS)}")
    start = table.get("start", "list", check=lambda v: None if v else "must not be empty")
    for i, arg in enumerate(start or ()):
        if problem := template_problem(arg, _START_VALUES):
            table.error(f"start.{i}", problem)
    signals = tuple(s.name for s in signal.Signals if not s.name.startswith("SIGRT"))
    stop_signal = table.get("stop_signal", "str", "SIGTERM", check=lambda v: None if v in signals else
                            f"expected a signal name such as SIGTERM or SIGINT, got {v!r}")
    ready_url = table.get("ready_url", "str", check=url_problem)
    start_timeout = table.get("start_timeout", "number", 20.0, check=positive)
    scope = table.get("scope", "str", "tree", check=lambda v: None if v in PROCESS_SCOPES else
                      f"expected one of {', '.join(PROCESS_SCOPES)}, got {v!r}")
    table.finish()
    if not table.has("start"):
        for key in ("stop_signal", "ready_url", "start_timeout"):
            if table.has(key):
                table.error(key, "only used with process.start")
    if values["port"] == "{port}" and not table.has("start"):
        table.error("port", '"{port}" (the port rtcap picked) needs process.start')
    if "agent_url" in given and table.has("start"):
        table.error("agent_url", "cannot be combined with process.start: rtcap starts servers on its own host, the agent "
                                 "watches one on the target's host; start the server there and run `rtcap agent` next to it")
    if "pid" in given and table.has("start"):
        table.error("pid", "cannot be combined with process.start (a started server gets a new pid)")
    if present and not given and not table.has("start"):
        table.errors.append(("process", f"give one of {', '.join(_PROCESS_KINDS)} (none = true), or start"))
    kind = _PROCESS_KINDS[given[0]] if given else ("started" if start else "none")
    value = values[given[0]] if given and given[0] != "none" else None
    if table.has("scope") and kind in ("cgroup", "metrics", "agent", "none"):
        table.error("scope", f"only for a process rtcap reads itself (pid, pidfile, port, start), not {kind}"
                             + (" (the agent's own --scope says what it sums)" if kind == "agent" else ""))
    return ProcessSpec(kind, value, start, stop_signal, ready_url, float(start_timeout), scope)


def _import_class(ref: str, source: Path | None, table: KeyReader) -> type | None:
    """The class named `module:Name`, imported with the adapter file's directory first on sys.path."""
    module_name, _, attr = ref.partition(":")
    folder = str(source.resolve().parent) if source is not None else None
    added = folder is not None and folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - user code: anything may go wrong while importing it
        table.error("class", f"cannot import {module_name!r}: {type(exc).__name__}: {exc}")
        return None
    finally:
        if added:
            sys.path.remove(folder)
    for part in attr.split("."):
        obj = getattr(obj, part, None)
    if not (isinstance(obj, type) and issubclass(obj, TargetAdapter)):
        table.error("class", f"{ref!r} is not a subclass of rtcap.targets.adapter.TargetAdapter (got {obj!r})")
        return None
    return obj


def _parse(data: Any, source: Path | None) -> tuple[dict[str, Any], type | None, list[tuple[str, str]]]:
    """Constructor arguments, class and errors from parsed TOML."""
    errors: list[tuple[str, str]] = []
    if not isinstance(data, dict):
        return {}, None, [("(top level)", f"expected a table, got {type(data).__name__}")]
    top = KeyReader(data, "", errors)
    name = top.get("name", "str", required=True, check=nonempty)
    base_url = top.get("base_url", "str", required=True, template=("port",), check=base_url_problem)
    channel = top.get("channel", "str", "live", check=nonempty)
    headers = {key: render_template(value, channel=channel) for key, value in top.headers("headers", ("channel",)).items()}
    follow_redirects = top.get("follow_redirects", "bool", False)
    class_ref = top.get("class", "str", check=lambda v: None if _CLASS_REF.match(v) else
                        f"expected 'package.module:ClassName', got {v!r}")
    message_table = top.table("message")
    inherited = {key: (getattr(MessageSpec(), key), f"message.{key}") for key in MessageSpec.__dataclass_fields__}
    inherited.update(_message_keys(message_table))
    message_table.finish()
    publish = _publish(top.table("publish"), headers)
    transports_table = top.table("transports")
    transports = {}
    for key in list(transports_table.data):
        if key not in TRANSPORTS:
            transports_table.known.append(key)
            transports_table.error(key, f"unknown transport (expected one of: {', '.join(TRANSPORTS)})")
        elif (spec := _transport(key, transports_table.table(key), inherited)) is not None:
            transports[key] = spec
    if not transports_table.data and "transports" not in (key for key, _ in errors):
        tables = ", ".join(f"[transports.{t}]" for t in TRANSPORTS)
        errors.append(("transports", f"at least one of {tables} is required"))
    process = _process(top.table("process"), top.has("process"))
    cls = _import_class(class_ref, source, top) if class_ref else TargetAdapter
    top.finish()
    if base_url and "{port}" in base_url and not process.start:
        top.error("base_url", "contains {port}, but only a server rtcap starts (process.start) gets a port")
    uses_port = [key for key, used in (("process.start", any("{port}" in a for a in process.start or ())),
                                       ("process.port", process.value == "{port}")) if used]
    if base_url and "{port}" not in base_url and uses_port:
        errors.append((uses_port[0], "uses {port} but base_url does not: rtcap could not reach the server it starts"))
    base_url = (base_url or "").rstrip("/")
    args = {"name": name, "base_url": base_url, "channel": channel, "headers": headers, "transports": transports,
            "publish": dataclasses.replace(publish, base_url=base_url), "process": process,
            "follow_redirects": follow_redirects}
    return args, cls, errors


def adapter_from_dict(data: dict[str, Any], source: Path | None = None) -> TargetAdapter:
    """Validate parsed TOML and build its adapter; AdapterError lists every problem found, one per line."""
    label = str(source) if source is not None else "<adapter>"
    args, cls, errors = _parse(data, source)
    if errors or cls is None:
        lines = list(dict.fromkeys(f"{label}: {key}: {problem}" for key, problem in errors))
        raise AdapterError("\n".join(lines), lines)
    try:
        return cls(**args, source=source)
    except Exception as exc:  # a user class may raise anything from its constructor
        raise AdapterError(f"{label}: class: {cls.__qualname__} could not be constructed: {exc}") from exc


def load_adapter(path: str | Path) -> TargetAdapter:
    """Read and validate an adapter TOML file; AdapterError names the file and each bad key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise AdapterError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise AdapterError(f"{path}: not UTF-8 text: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise AdapterError(f"{path}: TOML syntax error: {exc}") from None
    return adapter_from_dict(data, path)


def reference_adapter_path() -> Path:
    """Path of the bundled reference target's adapter file."""
    return Path(__file__).resolve().with_name("reference") / "adapter.toml"

