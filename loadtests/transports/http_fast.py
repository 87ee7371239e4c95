"""A GET's request bytes and a plain answer's head as h11 writes and reads them, without h11's state machine
(sans-I/O; http_client.py does the reading). Why, and what counts as plain, is in http_client.py's docstring.

Only h11's own grammar decides what is valid here (its private patterns, imported below: pyproject.toml pins
the h11 release they come from), and tests/loadtests/test_poll_fastpath.py reads every kind of answer both
ways; anything this module does not read is HandToH11, and h11 reads it from its first byte.
"""

from __future__ import annotations

from h11._events import request_target_re
from h11._headers import CONTENT_LENGTH_MAX_DIGITS, _content_length_re, _field_name_re, _field_value_re
from h11._readers import header_field_re, status_line_re
from h11._receivebuffer import blank_line_regex

__all__ = ["HandToH11", "blank_line_regex", "fast_head", "header_line", "request_head"]

H11_ONLY_REQUEST_HEADERS = frozenset({b"content-length", b"transfer-encoding", b"upgrade", b"expect"})
"""Request headers that change how h11 frames or reads an exchange: a request with one goes through h11."""
NO_BODY_STATUSES = (204, 304)
"""Answers without a body whatever their Content-Length says (h11 reads them so)."""


_LINE_CACHE: dict[tuple[str, str], tuple[bytes, bytes] | None] = {}
"""header_line's answers, shared by every connection: the Host, User-Agent and adapter headers of every poll
are the same few lines (the validators change each time); cleared when LINE_CACHE_SIZE is reached."""
LINE_CACHE_SIZE = 512


def header_line(name: str, value: str) -> tuple[bytes, bytes] | None:
    """(lower-case name, the line h11 writes) of a request header h11 would send unchanged, or None."""
    line = _LINE_CACHE.get((name, value), False)
    if line is not False:
        return line  # type: ignore[return-value]
    try:
        name_bytes, value_bytes = name.encode("ascii"), value.encode("ascii")
    except (UnicodeEncodeError, AttributeError):  # not ASCII text (or not text): h11 decides
        line = None
    else:
        lower = name_bytes.lower()
        valid = _field_name_re.fullmatch(name_bytes) and _field_value_re.fullmatch(value_bytes)
        line = (lower, b"%s: %s\r\n" % (name_bytes, value_bytes)) if valid else None
    if len(_LINE_CACHE) >= LINE_CACHE_SIZE:
        _LINE_CACHE.clear()
    _LINE_CACHE[(name, value)] = line
    return line


def request_head(target: str, lines: list[tuple[str, str]]) -> tuple[bytes, bool] | None:
    """The bytes h11 sends for `GET target` with these header lines, and whether they ask to close the
    connection after the answer; None for a request h11 must build itself (it may refuse it or frame it
    differently): anything not ASCII or not valid by h11's patterns, no Host or more than one, a header of
    H11_ONLY_REQUEST_HEADERS."""
    try:
        target_bytes = target.encode("ascii")
    except (UnicodeEncodeError, AttributeError):  # not ASCII text (or not text): h11 decides
        return None
    if not request_target_re.fullmatch(target_bytes):
        return None
    host: list[bytes] = []
    rest: list[bytes] = []
    close = False
    for name, value in lines:
        line = header_line(name, value)
        if line is None or line[0] in H11_ONLY_REQUEST_HEADERS:
            return None
        if line[0] == b"connection":
            close = close or b"close" in [token.strip() for token in value.lower().encode("ascii").split(b",")]
        (host if line[0] == b"host" else rest).append(line[1])
    if len(host) != 1:
        return None
    return b"GET %s HTTP/1.1\r\n%s%s\r\n" % (target_bytes, host[0], b"".join(rest)), close


class HandToH11(Exception):
    """The answer is not one the fast path reads: h11 gets `received` (and the end of the stream if `eof`)."""

    def __init__(self, received: bytes | bytearray, eof: bool = False) -> None:
        super().__init__()
        self.received = received
        self.eof = eof


def fast_head(head: bytes | bytearray, close: bool) -> tuple[int, dict[str, str], int, bool]:
    """(status, headers with lower-case names, body length, close after it) of a response head (its lines
    without the blank line that ends it), read as h11 reads it; HandToH11 for anything h11 should read."""
    lines = head.split(b"\r\n")
    status_line = status_line_re.fullmatch(lines[0])
    if status_line is None or status_line["http_version"] != b"1.1":
        raise HandToH11(b"")
    status = int(status_line["status_code"])
    if status < 200:
        raise HandToH11(b"")
    headers: dict[str, str] = {}
    lengths = []
    for line in lines[1:]:
        field = header_field_re.fullmatch(line)
        if field is None:
            raise HandToH11(b"")
        name, value = field["field_name"].lower(), field["field_value"]
        if name == b"content-length":
            lengths.append(value)
        elif name == b"transfer-encoding":
            raise HandToH11(b"")
        elif name == b"connection":
            close = close or b"close" in [token.strip() for token in value.lower().split(b",")]
        headers[name.decode("latin-1")] = value.decode("latin-1")
    if len(lengths) > 1 or (lengths and (not _content_length_re.fullmatch(lengths[0])
                                         or len(lengths[0]) > CONTENT_LENGTH_MAX_DIGITS)):
        raise HandToH11(b"")
    if status in NO_BODY_STATUSES:
        return status, headers, 0, close
    if not lengths:
        raise HandToH11(b"")  # delimited by the connection's close: h11 reads it
    return status, headers, int(lengths[0]), close
