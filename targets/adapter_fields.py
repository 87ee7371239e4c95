"""Field-level helpers of target adapters.

Reading a target's messages (dotted JSON paths, sequence numbers, publish times, event filters), filling
placeholder templates, and typed reading of TOML keys with errors collected under dotted key names.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

TS_UNITS = ("s", "ms", "us", "ns", "iso8601")
SEQ_TYPES = ("int", "string")
SSE_ID = "@id"  # seq path meaning "the SSE id: line"
_DIVISORS = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
_INT_TEXT = re.compile(r"^[+-]?\d+$")
_PREVIEW_CHARS = 200
_MISSING = object()


class FieldError(ValueError):
    """A message lacks a configured field, or the field has an unusable value."""


def preview(message: Any, limit: int = _PREVIEW_CHARS) -> str:
    """A one-line, truncated rendering of `message` for error messages."""
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    text = message if isinstance(message, str) else json.dumps(message, default=repr, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def _show(value: Any) -> str:
    return preview(repr(value) if isinstance(value, str) else value, 60)


def path_problem(path: str) -> str | None:
    """Why `path` is not a usable dotted path ("" is the object itself), or None if it is."""
    if path and any(not part.strip() for part in path.split(".")):
        return f"bad path {path!r}: empty segment (write a.b.0, no leading, trailing or double dots)"
    return None


def decode(value: Any, what: str) -> Any:
    """`value`, JSON-decoded first if it is text; FieldError if that text is not JSON."""
    if isinstance(value, (str, bytes, bytearray)):
        try:
            return json.loads(value)
        except ValueError:
            raise FieldError(f"{what} is not JSON: {preview(value)}") from None
    return value


def lookup(obj: Any, path: str) -> Any:
    """The value at dotted `path` in `obj` (list items by index, negative allowed), or a private sentinel."""
    if not path:
        return obj
    for part in path.split("."):
        if isinstance(obj, dict) and part in obj:
            obj = obj[part]
        elif isinstance(obj, list) and _INT_TEXT.match(part) and -len(obj) <= int(part) < len(obj):
            obj = obj[int(part)]
        else:
            return _MISSING
    return obj


def resolve(obj: Any, path: str, what: str, message: Any = None) -> Any:
    """The value at dotted `path` in `obj`; FieldError naming the path and showing the message if absent."""
    value = lookup(obj, path)
    if value is _MISSING:
        shown = obj if message is None else message
        raise FieldError(f"{what} path {path!r} not found in message: {preview(shown)}")
    return value


def coerce_seq(value: Any, seq_type: str, where: str) -> int | str:
    """A sequence number as configured: int (integral numbers and digit strings) or text."""
    if seq_type == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        return value
    elif (isinstance(value, float) and value.is_integer()) or (isinstance(value, str) and _INT_TEXT.match(value.strip())):
        return int(value)
    expected = "an integer" if seq_type == "int" else "a string or number"
    raise FieldError(f"seq {where} is {_show(value)}, expected {expected} (seq_type = {seq_type!r})")


def convert_ts(value: Any, unit: str, where: str) -> float:
    """A publish time in unix seconds from a number in `unit`, or an ISO 8601 string (naive = UTC)."""
    if unit == "iso8601":
        if isinstance(value, str):
            text = value.strip()
            text = text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                pass
            else:
                return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
        raise FieldError(f"ts {where} is {_show(value)}, expected an ISO 8601 time (ts_unit = 'iso8601')")
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise FieldError(f"ts {where} is {_show(value)}, expected a number (ts_unit = {unit!r})")
    return number / _DIVISORS[unit]


def values_equal(a: Any, b: Any) -> bool:
    """Equality that does not confuse booleans with 0 and 1."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def matches(found: Any, wanted: Any) -> bool:
    """A `match` value test: equal to `wanted`, or to any item of it when it is a list (`["typing", "presence"]`)."""
    if isinstance(wanted, list):
        return any(values_equal(found, item) for item in wanted)
    return values_equal(found, wanted)


def flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables as dotted paths: {"data": {"kind": "x"}} -> {"data.kind": "x"}."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        path = f"{prefix}.{key}" if prefix else key
        flat.update(flatten(value, path) if isinstance(value, dict) else {path: value})
    return flat


@dataclass(frozen=True)
class MessageSpec:
    """Where a transport's messages keep their sequence number and publish time, and which are events."""

    seq: str = "seq"
    ts: str = "ts"
    ts_unit: str = "s"
    seq_type: str = "int"
    match: dict[str, Any] = field(default_factory=dict)
    payload: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "match", flatten(self.match))  # nested tables become dotted paths

    def is_event(self, message: Any) -> bool:
        """True if every `match` path of the message equals its value (always True without `match`)."""
        if not self.match:
            return True
        try:
            obj = decode(message, "message")
        except FieldError:
            return False
        return all(matches(lookup(obj, path), value) for path, value in self.match.items())

    def event(self, message: Any) -> Any:
        """The event inside `message`: the `payload` path (JSON-decoded if it is text), or the message."""
        obj = decode(message, "message")
        if not self.payload:
            return obj
        return decode(resolve(obj, self.payload, "payload", message), f"payload {self.payload!r}")

    def extract(self, message: Any, sse_id: str | None = None) -> tuple[int | str, float | None]:
        """(seq, publish time in unix seconds or None) of one event; FieldError if a field is missing or bad."""
        event = _MISSING
        if self.seq == SSE_ID:
            if sse_id is None:
                raise FieldError(f"seq is '@id' but the SSE event had no id: line: {preview(message)}")
            seq = coerce_seq(sse_id, self.seq_type, "from the SSE id: line")
        else:
            event = self.event(message)
            seq = coerce_seq(resolve(event, self.seq, "seq", message), self.seq_type, f"at {self.seq!r}")
        if not self.ts:
            return seq, None
        if event is _MISSING:
            event = self.event(message)
        return seq, convert_ts(resolve(event, self.ts, "ts", message), self.ts_unit, f"at {self.ts!r}")


def events_in(body: Any, path: str) -> list[Any]:
    """The events of a polled response body: the list at `path`, one event, or none (null)."""
    found = resolve(decode(body, "response body"), path, "events", body) if path else decode(body, "response body")
    if found is None:
        return []
    return list(found) if isinstance(found, list) else [found]


def cursor_in(body: Any, path: str, default: Any) -> Any:
    """The next poll cursor: the value at `path` in the body if configured, else `default`."""
    return resolve(decode(body, "response body"), path, "cursor", body) if path else default


# --- templates: placeholders in URLs, bodies, subscribe/send texts and the start command ---

_FORMATTER = string.Formatter()
PLACEHOLDERS = {  # every placeholder, and where it may appear (for error hints)
    "channel": "urls, headers, publish body, subscribe, send and process.start",
    "room": "the chat url, subscribe and send",
    "cursor": "poll and longpoll urls",
    "seq": "the publish url, body and headers",
    "counter": "the publish url, body and headers",
    "ts": "the publish url, body and headers",
    "ts_ms": "the publish url, body and headers",
    "padding": "the publish url, body and headers, and chat send",
    "n": "chat send, rpc request and presence send",
    "id": "the rpc request",
    "client": "presence send and presence",
    "port": "base_url and process.start",
    "python": "process.start",
    "rate": "process.start",
    "payload": "process.start",
}
_BRACES = " (write literal braces, as in JSON, as {{ and }})"


class _Values(dict):
    def __missing__(self, key: str) -> str:
        raise ValueError(f"no value given for placeholder {{{key}}}")


def render_template(template: str, *, url: bool = False, **values: Any) -> str:
    """Fill `{name}` placeholders (`{{`/`}}` are literal braces); in URLs, values are percent-encoded."""
    filled = _Values({k: quote(str(v), safe="") if url else str(v) for k, v in values.items() if v is not None})
    return template.format_map(filled)


def template_problem(template: str, allowed: tuple[str, ...]) -> str | None:
    """Why `template` is not valid where only `allowed` placeholders may appear, or None."""
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        return f"bad template {template!r}: {exc}{_BRACES}"
    here = ", ".join(f"{{{n}}}" for n in allowed) or "none"
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            hint = "" if name.isidentifier() else _BRACES
            return f"unknown placeholder {shown} in {template!r} (allowed here: {here}){hint}"
        if name not in allowed:
            where = PLACEHOLDERS[name]
            return f"placeholder {{{name}}} is not allowed here (allowed here: {here}); it belongs in {where}"
    return None


def join_url(base_url: str, url: str, websocket: bool = False) -> str:
    """`url` made absolute (a path is appended to base_url); http(s) becomes ws(s) for WebSockets."""
    if "://" not in url:
        if not base_url or "{port}" in base_url:
            raise ValueError(f"cannot resolve {url!r}: base_url is {base_url!r} (use with_port() for a started server)")
        url = base_url.rstrip("/") + url
    return "ws" + url[4:] if websocket and url.startswith("http") else url


# --- typed reading of TOML tables: problems are collected as (dotted key, message) ---

_CHECKS = {
    "str": ("a string", lambda v: isinstance(v, str)),
    "int": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "number": ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "table": ("a table", lambda v: isinstance(v, dict)),
    "list": ("an array of strings", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)),
}
_TOML_TYPES = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}


def url_problem(url: str, schemes: tuple[str, ...] = ("http", "https")) -> str | None:
    """Why `url` is neither a path starting with / nor an absolute URL with one of `schemes`, or None."""
    match = re.match(r"^([A-Za-z][\w+.-]*)://[^/?#]+", url)
    if url.startswith("/") or (match and match.group(1).lower() in schemes):
        return None
    return f"expected a path starting with / or an absolute {' or '.join(s + '://' for s in schemes)} URL, got {url!r}"


def base_url_problem(url: str) -> str | None:
    """Why `url` is not an http(s) base URL (a {port} placeholder allowed), or None."""
    if re.match(r"^https?://[^/?#]+(/[^?#]*)?$", url.replace("{port}", "1")):
        return None
    return f"expected an http:// or https:// URL without query (ws:// URLs are derived from it), got {url!r}"


def agent_url_problem(url: str) -> str | None:
    """Why `url` cannot be an `rtcap agent`'s address (http://host:port, no query, no placeholder), or None.

    A path would be joined to base_url, which names the server rather than the agent beside it: refused."""
    if re.match(r"^http://[^/?#{}\s]+/?$", url):
        return None
    return (f"expected the agent's address as http://host:port (what `rtcap agent` prints when it starts), "
            f"got {url!r}")


def nonempty(value: str) -> str | None:
    """A problem if `value` is blank, else None."""
    return None if value.strip() else "must not be empty"


def positive(value: float) -> str | None:
    """A problem if `value` is not > 0, else None."""
    return None if value > 0 else f"must be > 0, got {value}"


class KeyReader:
    """One TOML table being read: typed getters record errors under dotted keys; finish() flags unknown keys."""

    def __init__(self, data: Any, prefix: str, errors: list[tuple[str, str]]) -> None:
        self.data: dict[str, Any] = data if isinstance(data, dict) else {}
        self.prefix, self.errors, self.known = prefix, errors, list[str]()

    def key(self, name: str) -> str:
        """The dotted key of `name` in this table."""
        return f"{self.prefix}.{name}" if self.prefix else name

    def error(self, name: str, problem: str) -> None:
        """Record a problem with key `name`."""
        self.errors.append((self.key(name), problem))

    def has(self, name: str) -> bool:
        """True if the table sets `name` (valid or not)."""
        return name in self.data

    def get(self, name: str, kind: str, default: Any = None, *, required: bool = False, choices: tuple = (),
            template: tuple[str, ...] | None = None, path: bool = False, check: Any = None) -> Any:
        """The value of `name` if present and valid, else `default` (after recording why)."""
        if name not in self.known:
            self.known.append(name)
        if name not in self.data:
            if required:
                self.error(name, "required key is missing")
            return default
        value = self.data[name]
        what, ok = _CHECKS[kind]
        if not ok(value):
            shown = repr(value) if isinstance(value, str) else preview(value, 60)
            self.error(name, f"expected {what}, got {_TOML_TYPES.get(type(value), type(value).__name__)} {shown}")
            return default
        if choices and value not in choices:
            problem = f"expected one of {', '.join(choices)}, got {value!r}"
        else:
            problem = template_problem(value, template) if template is not None else None
            problem = problem or (path_problem(value) if path else None) or (check(value) if check else None)
        if problem:
            self.error(name, problem)
            return default
        return value

    def table(self, name: str) -> KeyReader:
        """A reader of sub-table `name` (empty if absent or not a table)."""
        return KeyReader(self.get(name, "table", {}), self.key(name), self.errors)

    def headers(self, name: str, allowed: tuple[str, ...]) -> dict[str, str]:
        """Sub-table `name` as header name -> value template, keeping only valid entries."""
        table = self.table(name)
        values = {key: table.get(key, "str", template=allowed) for key in table.data}
        return {key: value for key, value in values.items() if value is not None}

    def finish(self) -> None:
        """Record every key of the table that was never asked for as unknown."""
        for name in self.data:
            if name not in self.known:
                close = difflib.get_close_matches(name, self.known, 1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                self.error(name, f"unknown key ({hint}expected one of: {', '.join(self.known)})")


def parse_body(text: str | bytes) -> Any:
    """A message as JSON when it is JSON, else as text (adapters may read either)."""
    try:
        return json.loads(text)
    except ValueError:
        return text if isinstance(text, str) else text.decode("utf-8", errors="replace")
