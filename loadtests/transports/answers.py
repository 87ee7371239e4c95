"""What a polled answer says besides its events: a 304 and the bytes it saved, and a cache's HIT or MISS and Age.

Sans-I/O: the polling viewer feeds each answer's status, headers and wire size; the meter returns the stream
counters to add (names in metrics.STREAM_COUNTERS).

- `not_modified`: 304 answers.
- `bytes_saved`: per 304, the wire bytes (head and body, as the socket counted them) of the last 200 answer
  the viewer received, minus the wire bytes of the 304: what re-sending the representation the viewer already
  holds would have moved. Exact for full-state polling (the unchanged state comes back whole) and for cursor
  polls of a quiet channel; when a cursor poll's last 200 carried news, the 200 the same poll gets without
  validators is an empty event list, smaller: compare `bytes_received` of a `--no-conditional-get` run.
- `cache_hits`, `cache_misses`: answers whose cache header (the adapter's `cache_header`, e.g. X-Cache) reads
  HIT (also STALE, UPDATING: served without the origin) or anything else (the handler ran).
- `cache_age_s`: the `Age` of those answers, whole seconds (absent: 0); its mean is the staleness the cache adds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

SERVED_FROM_CACHE = frozenset({"HIT", "STALE", "UPDATING"})
"""First words of a cache status header meaning the answer did not reach the origin's handler."""


def cache_hit(value: str) -> bool:
    """True if a cache status header value (`HIT`, `MISS`, `HIT, MISS` of two layers...) says the nearest cache
    answered: its first word is HIT, STALE or UPDATING, in any case."""
    words = value.replace(",", " ").split()
    return bool(words) and words[0].upper() in SERVED_FROM_CACHE


def age_seconds(value: str | None) -> int:
    """The Age header's whole seconds; absent or malformed counts as 0 (a fresh answer)."""
    value = (value or "").strip()
    return int(value) if value.isdigit() else 0


@dataclass
class AnswerMeter:
    """One viewer's accounting of 304s and cache answers; `cache_header` None counts no cache answers."""

    cache_header: str | None = None
    last_full_bytes: int | None = None

    def measure(self, status: int, headers: Mapping[str, str], wire_bytes: int) -> dict[str, int]:
        """The counters one answer adds; `headers` have lower-case names, `wire_bytes` is what the socket read."""
        counts: dict[str, int] = {}
        if status == 200:
            self.last_full_bytes = wire_bytes
        elif status == 304:
            counts["not_modified"] = 1
            if self.last_full_bytes is not None:
                counts["bytes_saved"] = max(0, self.last_full_bytes - wire_bytes)
        if self.cache_header is not None:
            value = headers.get(self.cache_header.lower())
            if value is not None:
                counts["cache_hits" if cache_hit(value) else "cache_misses"] = 1
                counts["cache_age_s"] = age_seconds(headers.get("age"))
        return counts
