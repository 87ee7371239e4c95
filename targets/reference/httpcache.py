"""A CDN-like cache in front of /poll and /state (--cache-ttl): a full answer is reused for TTL seconds per key.

Like a CDN it caches the full 200 answer, never a 304, and evaluates each client's validators itself, so a
client holding the cached answer still gets its 304 without the handler running. Every cacheable answer says
where it came from, as CDNs do: `X-Cache: HIT` or `MISS`, and `Age`, the whole seconds since it was built.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

from .conditional import Answer

ENDPOINTS = ("poll", "longpoll", "state")
MAX_ENTRIES = 100_000
"""Bound on cached answers: a key holds a client's cursor, and cursors are as many as the events buffered."""


@dataclass(frozen=True)
class Cached:
    """An answer taken from the cache (or just put in it), and what to tell the client about it."""

    answer: Answer
    hit: bool
    age: int

    @property
    def headers(self) -> dict[str, str]:
        """The X-Cache and Age headers of this answer."""
        return {"X-Cache": "HIT" if self.hit else "MISS", "Age": str(self.age)}


class AnswerCounters:
    """/metrics counters: how many answers each handler built, how many the cache served, how many were 304."""

    def __init__(self, registry: CollectorRegistry) -> None:
        runs = Counter("rtcap_handler_runs", "Answers built by the /poll and /state handlers (every request "
                       "without --cache-ttl; cache misses and long polls with it).", ["endpoint"], registry=registry)
        hits = Counter("rtcap_cache_hits", "Answers served from the --cache-ttl cache without running the "
                       "handler.", ["endpoint"], registry=registry)
        unchanged = Counter("rtcap_not_modified", "304 Not Modified answers (the client's validators matched).",
                            ["endpoint"], registry=registry)
        # Children resolved once: labels() takes a lock, too slow per request.
        self.runs = {e: runs.labels(e) for e in ENDPOINTS}
        self.hits = {e: hits.labels(e) for e in ENDPOINTS}
        self.not_modified = {e: unchanged.labels(e) for e in ENDPOINTS}


class AnswerCache:
    """Full answers by key for `ttl` seconds; entries expire in insertion order, so pruning is from the front."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl = ttl
        self.clock = clock
        self.max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, Answer]] = {}

    @property
    def enabled(self) -> bool:
        """True when answers are cached at all (--cache-ttl > 0)."""
        return self.ttl > 0

    def fetch(self, key: Hashable, build: Callable[[], Answer]) -> Cached:
        """The fresh cached answer for `key`, else `build()`'s (stored for the next `ttl` seconds).

        `build` is synchronous, so no other request can miss on the same key before the answer is stored.
        """
        now = self.clock()
        entry = self._entries.get(key)
        if entry is not None and now - entry[0] < self.ttl:
            return Cached(entry[1], True, int(now - entry[0]))
        answer = build()
        self._entries.pop(key, None)  # re-inserted at the end: the dict stays ordered by storage time
        self._entries[key] = (now, answer)
        self._prune(now)
        return Cached(answer, False, 0)

    def _prune(self, now: float) -> None:
        entries = self._entries
        while entries:
            key, (stored, _) = next(iter(entries.items()))
            if now - stored < self.ttl and len(entries) <= self.max_entries:
                return
            del entries[key]

    def __len__(self) -> int:
        return len(self._entries)
