"""REST polling: an abstract Locust viewer polling on a fixed schedule, with a cursor and conditional GETs, or
re-reading a channel's whole state when the transport's URL has no {cursor}; `PollUser` and `StateUser` are the
concrete users of the poll and state transports.

It uses `http_client.HTTPConnection` (one keep-alive connection per viewer, like a browser tab) so that the
bytes it reports are the bytes its socket moved, and fires Locust request events itself. What a poll costs
the generator, against a stock gevent + geventhttpclient client: bench/stock_poll.py and bench/generator.py
(most of it is now the socket's system calls, gevent's loop and Locust's request event; the HTTP exchange
takes a fast path described in http_client.py).

Poll latency is measured from the intended poll time (coordinated omission): each poll belongs to a tick of
the viewer's fixed schedule, and its GET request event reports the time from that tick to the end of the
response, not from when the request actually went out. A server that stalls one poll therefore also pays
for the poll that had to wait behind it, instead of the wait vanishing from the percentiles. Ticks that
passed entirely while the viewer was still waiting are skipped (no burst of catch-up polls) and counted as
`missed_ticks`.

A poll is bounded by `limits.for_settings` (no deadline longer than --read-timeout): an oversized or endless
answer, a server that sends its head and goes silent, a redirect, all end the poll as a failed GET with a
named LimitExceeded, so a broken target shows up as errors, never as polls that simply did not happen.
An adapter with `follow_redirects = true` has same-origin redirects followed instead (http_client.py): the
poll is then one GET request event from its tick to the last hop's answer, with every hop's bytes.
"""

from __future__ import annotations

import random
import string
import time
from urllib.parse import urlsplit

import h11
from locust import User, task

from rtcap.loadtests.transports import metrics
from rtcap.loadtests.transports.answers import AnswerMeter
from rtcap.loadtests.transports.http_client import HTTPConnection, HTTPResponse
from rtcap.loadtests.transports.limits import for_settings
from rtcap.loadtests.generator.options import Settings
from rtcap.loadtests.transports.seqtrack import SeqTracker
from rtcap.loadtests.generator.targeting import adapter_for
from rtcap.targets.adapter_fields import parse_body
from rtcap.targets.adapter_fields import FieldError


class PollError(Exception):
    """A poll answered with a status other than 200 or 304."""


def has_placeholder(template: str, name: str) -> bool:
    """True if the URL template uses the placeholder `{name}`."""
    return any(field == name for _, field, _, _ in string.Formatter().parse(template))


def bind_http_user(user: User) -> None:
    """Give an HTTP user of `user.transport` its settings, adapter, transport spec, channel, one keep-alive
    connection (not opened yet, bounded by the read timeout; a user that `holds` its requests may wait for a
    head that long; following redirects if the adapter says so) and the request name its events carry (the
    URL's path)."""
    user.settings = Settings.of(user.environment)
    user.adapter = adapter_for(user.environment)
    user.spec = user.adapter.transport(user.transport)
    user.channel = user.settings.channel or user.adapter.channel
    limits = for_settings(user.settings, holds=getattr(user, "holds", False))
    user.http = HTTPConnection(user.adapter.base_url, timeout=user.settings.read_timeout, limits=limits,
                               follow_redirects=user.adapter.follow_redirects)
    user.name = urlsplit(user.spec.url).path or "/"


class PollingViewer(User):
    """Polls every `--poll-interval` seconds on a fixed schedule; an event's staleness is its delivery latency.

    Poll latency is measured from the intended poll time (coordinated omission): the GET's response time
    runs from the poll's tick to the end of its response, and ticks skipped because an earlier poll was
    still waiting are counted as `missed_ticks`. A transport whose URL has no {cursor} (full-state polling)
    returns old events again in every response; those are old state, not deliveries nor duplicates.
    """

    abstract = True
    transport = "poll"
    holds = False
    """True when the server holds each request until there is news: an outstanding poll is an open connection."""

    def on_start(self) -> None:
        """Read the options, wait a random phase so viewers do not poll in lockstep, and sync the cursor."""
        bind_http_user(self)
        self.tracker = SeqTracker()
        self.cursor: object = None
        self._url_key: tuple[type, object] | None = None  # the cursor the last rendered URL was for
        self._url = ""  # not rendered yet: the first poll renders it whatever its key
        self.synced = False
        # No cursor in the URL: every answer is the channel's whole state, old events included.
        self.full_state = not has_placeholder(self.spec.url, "cursor")
        self._state_high: int | None = None  # full state, int seqs: the highest seq any answer held
        self._state_seqs: set[str] = set()  # full state, text seqs: the seqs of the last answer
        self.etag: str | None = None
        self.last_modified: str | None = None
        self._reported = (0, 0)
        self.meter = AnswerMeter(self.spec.cache_header)
        self.last_failed = False
        interval = self.poll_interval()
        # The schedule runs on the monotonic clock: a wall-clock step must not move ticks or response times.
        self.next_poll = time.monotonic() + random.uniform(0, interval)
        time.sleep(max(0.0, self.next_poll - time.monotonic()))

    def poll_interval(self) -> float:
        """Seconds between two ticks of this viewer's schedule (0: poll again as soon as an answer is in)."""
        return self.settings.poll_interval

    def wait_time(self) -> float:
        """Pace polls on a fixed schedule from the first one, not from the end of the last request.

        If the last poll ended after later ticks had come, the latest of them is polled at once (late, and
        charged from its tick) and the earlier ones are skipped and counted as missed, instead of bursting.
        """
        interval = self.poll_interval()
        now = time.monotonic()
        if interval <= 0:
            self.next_poll = now  # no schedule: poll back to back, each charged from when it could go
            return 0.0
        due = int((now - self.next_poll) // interval)  # ticks after the last poll's one that have already come
        if due >= 2:
            metrics.count(self.transport, "missed_ticks", due - 1)
            self.next_poll += interval * due
        else:
            self.next_poll += interval
        return max(0.0, self.next_poll - now)

    @task
    def poll(self) -> None:
        """One poll for the current tick: GET events after the cursor (or the whole state), with the validators
        of the last answer."""
        tick = self.next_poll
        url = self._url_for("0" if self.cursor is None else self.cursor)
        headers = dict(self.adapter.headers)
        if self.settings.conditional_get and self.spec.conditional:
            # Both validators, as a browser sends them: some servers key their cursor on either.
            if self.etag:
                headers["If-None-Match"] = self.etag
            if self.last_modified:
                headers["If-Modified-Since"] = self.last_modified
        if self.http.sock is None:
            self._connect()
        if self.holds:
            metrics.open_connections[self.transport] += 1
        try:
            response = self.http.get(url, headers)
        except (OSError, h11.ProtocolError) as error:  # a LimitExceeded (limit, timeout, redirect) is an OSError
            self._fire(self._since(tick), 0, error)
            return
        finally:
            if self.holds:
                metrics.open_connections[self.transport] -= 1
            wire_bytes = self._flush_bytes()
        elapsed_ms = self._since(tick)
        received_at = time.time()
        for name, value in self.meter.measure(response.status, response.headers, wire_bytes).items():
            metrics.count(self.transport, name, value)
        # Application bytes: what the viewer's code gets to parse (an empty body for a 304).
        metrics.count(self.transport, "payload_bytes", len(response.body))
        error = None if response.status in (200, 304) else PollError(f"HTTP {response.status}")
        self._fire(elapsed_ms, len(response.body), error)
        if response.status == 200:
            self.etag = response.headers.get("etag")
            self.last_modified = response.headers.get("last-modified")
            self._on_body(response, received_at)

    def _url_for(self, cursor: object) -> str:
        """The poll's URL for a cursor; rendered again only when the cursor changed and the URL has a {cursor}
        (full-state polling, or a quiet channel, polls the same URL every time)."""
        key = (type(cursor), cursor) if not self.full_state else None
        if key != self._url_key or not self._url:
            self._url_key = key
            self._url = self.adapter.url_for(self.transport, channel=self.channel, cursor=cursor)
        return self._url

    @staticmethod
    def _since(tick: float) -> float:
        # Milliseconds from the intended poll time, so a poll sent late still counts the wait before it.
        return max(0.0, (time.monotonic() - tick) * 1000.0)

    def _connect(self) -> None:
        started = time.perf_counter()
        try:
            metrics.report_connect(self.environment, self.transport, self.http.connect())
        except OSError as error:
            metrics.report_connect(self.environment, self.transport, (time.perf_counter() - started) * 1000.0, error)
            raise

    def _fire(self, elapsed_ms: float, length: int, exception: BaseException | None) -> None:
        self.last_failed = exception is not None
        self.environment.events.request.fire(
            request_type="GET", name=self.name, response_time=elapsed_ms, response_length=length,
            exception=exception, context={"transport": self.transport},
        )

    def _is_old_state(self, seq: int | str, high_before: int | None) -> bool:
        """Full-state polling: True if the viewer already held this event from an earlier answer."""
        if isinstance(seq, int):
            return high_before is not None and seq <= high_before
        return seq in self._state_seqs

    def _on_body(self, response: HTTPResponse, received_at: float) -> None:
        payload = parse_body(response.body)
        # Compared with what the viewer held before this answer, so events listed out of order stay new.
        high_before = self._state_high
        state_seqs: set[str] = set()
        try:
            events = [e for e in self.spec.events_in(payload) if self.adapter.is_event(self.transport, e)]
            last_seq = None
            for event in events:
                seq, publish_ts = self.adapter.extract(self.transport, event)
                last_seq = seq
                if self.full_state:
                    old = self._is_old_state(seq, high_before)
                    if isinstance(seq, int):
                        self._state_high = seq if self._state_high is None else max(self._state_high, seq)
                    else:
                        state_seqs.add(seq)
                    if old:
                        continue  # repeated state, neither a delivery nor a duplicate
                if self.synced:
                    # The first poll only learns where the stream is: old buffered events are not deliveries.
                    metrics.report_event(self.environment, self.transport, self.tracker, seq, publish_ts, received_at, 0)
            if self.full_state:
                # A sliding state shows what it still holds: the last answer is all the viewer needs to remember.
                self._state_seqs = state_seqs
            self.cursor = self.spec.cursor_in(payload, last_seq if last_seq is not None else self.cursor)
            self.synced = True
        except FieldError as error:
            if self.full_state:
                self._state_seqs |= state_seqs  # events reported before the bad one must not be reported again
            metrics.report_error(self.environment, self.transport, "message", error)

    def _flush_bytes(self) -> int:
        """Report the bytes moved since the last call; return those received (one poll's whole answer)."""
        sent, received = self.http.byte_counts
        metrics.count(self.transport, "bytes_sent", sent - self._reported[0])
        metrics.count(self.transport, "bytes_received", received - self._reported[1])
        answer_bytes = received - self._reported[1]
        self._reported = (sent, received)
        return answer_bytes

    def on_stop(self) -> None:
        """Close the connection and report this viewer's sequence accounting."""
        self.http.close()
        metrics.report_subscriber(self.transport, self.tracker)


class PollUser(PollingViewer):
    """A viewer polling `/poll` every `--poll-interval` seconds with a since-cursor and If-None-Match."""


class StateUser(PollingViewer):
    """A viewer re-reading the whole `/state` of its channel every `--poll-interval` seconds (no cursor)."""

    transport = "state"
