"""Conditional GETs for /poll and /state: validators of a full answer, and 304 Not Modified when they match."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import format_datetime, parsedate_to_datetime
from datetime import datetime, timezone

from fastapi.responses import Response

JSON = "application/json"


@dataclass(frozen=True)
class Answer:
    """A full 200 answer before its conditional evaluation: body, validators and how many events it carries."""

    body: bytes
    etag: str
    modified: float | None  # publish time of the newest event the answer shows; None when it shows none
    last_modified: str | None  # the Last-Modified header sent with it (see last_modified())
    events: int


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """True if an If-None-Match header value names `etag` (weak prefixes and lists allowed)."""
    if not if_none_match:
        return False
    tags = (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))
    return any(tag in (etag, "*") for tag in tags)


def last_modified(modified: float | None, now: float | None = None) -> str | None:
    """The Last-Modified date of an answer whose newest event was published at `modified`.

    HTTP dates have whole seconds. While the newest event's second is still running, another event may be
    published in it, and a client holding that date would be told 304 for it: so until the second is over the
    date is the second before, which at worst costs the client one more full answer, never an event.
    """
    if modified is None:
        return None
    now = time.time() if now is None else now
    second = min(math.floor(modified), math.floor(now) - 1)
    return format_datetime(datetime.fromtimestamp(second, timezone.utc), usegmt=True)


def _http_seconds(value: str | None) -> float | None:
    """Unix seconds of an HTTP date, or None when absent or malformed (a bad date is ignored, per RFC 9110)."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def not_modified(headers: Mapping[str, str], answer: Answer) -> bool:
    """True if the request's validators show that the client already holds `answer`.

    If-None-Match decides when present (RFC 9110 13.1.3: If-Modified-Since is then ignored); otherwise
    If-Modified-Since matches when the newest event the answer shows was published in or before its second.
    """
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        return etag_matches(if_none_match, answer.etag)
    since = _http_seconds(headers.get("if-modified-since"))
    return since is not None and answer.modified is not None and math.floor(answer.modified) <= since


def respond(headers: Mapping[str, str], answer: Answer, conditional: bool = True,
            extra: Mapping[str, str] | None = None) -> Response:
    """The response to one request: 304 with the validators when they match, else the full answer."""
    out = dict(extra or {})
    if conditional:
        out["ETag"] = answer.etag
        if answer.last_modified:
            out["Last-Modified"] = answer.last_modified
        if not_modified(headers, answer):
            return Response(status_code=304, headers=out)
    return Response(answer.body, media_type=JSON, headers=out)
