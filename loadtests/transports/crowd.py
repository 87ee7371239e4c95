"""Many held connections in one Locust user, read from the event loop instead of a greenlet each.

Why: a greenlet parked in a socket read costs 6-8 KiB of RSS (its Python frames and saved C stack; measured
with 20,000 parked greenlets) and a switch per message, and a Locust user adds its own objects on top. At
10^4-10^5 connections per process that is most of the load generator's memory and CPU. With
`--held-per-user K` a feed listener (a transport whose registry record says `crowd`: ws, sse, ndjson) holds K
connections. Each socket gets an io watcher on gevent's loop; its callback runs in the hub, reads what is
waiting without blocking, and hands it to the user's `consume` (the same parsing and reporting as the
one-connection path). The user's greenlet only opens connections, reconnects a broken one after its own
backoff, and ends a connection silent for longer than --read-timeout.

The user's per-connection attributes (`StreamUser.connection_state`: client, seq tracker, byte counts...)
are kept per connection and put in place around every call that uses them, so the transport modules'
code is the same in both modes.
"""

from __future__ import annotations

import contextlib
import operator
import time
from collections.abc import Iterator
from typing import Any

import gevent
from gevent.event import Event

from rtcap.loadtests.transports import metrics
from rtcap.loadtests.transports.backoff import STABLE_S, Backoff
from rtcap.loadtests.transports.limits import TimeLimitExceeded
from rtcap.loadtests.transports.seqtrack import SeqTracker
from rtcap.loadtests.transports.ws_frames import READ_SIZE

CHECK_S = 1.0
"""How often the user's greenlet looks for silent connections and due reconnects, at most."""


class Held:
    """One connection of a crowd: the user's per-connection attributes, its io watcher and what broke it."""

    __slots__ = ("backoff", "began", "error", "last_item", "retry_at", "state", "watcher")

    def __init__(self, state: dict[str, Any], cap: float) -> None:
        self.state = state
        self.backoff = Backoff(cap=cap)
        self.watcher: Any = None
        self.error: BaseException | None = None
        self.began = 0.0
        self.last_item = 0.0
        self.retry_at = 0.0


class Crowd:
    """Holds `size` connections for one StreamUser until Locust stops the user."""

    def __init__(self, user: Any, size: int) -> None:
        self.user = user
        self.names: tuple[str, ...] = user.connection_state
        getter = operator.itemgetter(*self.names)
        self._get = (lambda d: (getter(d),)) if len(self.names) == 1 else getter
        fresh = {name: getattr(user, name) for name in self.names}
        self.held = [Held({**fresh, "tracker": SeqTracker()}, user.settings.reconnect_max) for _ in range(size)]
        self.wake = Event()
        self.loop = gevent.get_hub().loop
        self.silence = float(user.settings.read_timeout)

    @contextlib.contextmanager
    def _as(self, held: Held) -> Iterator[None]:
        """Put one connection's attributes on the user, and keep what the call changed."""
        saved = self._enter(held)
        try:
            yield
        finally:
            self._leave(held, saved)

    def _enter(self, held: Held) -> tuple[Any, ...]:
        # On the instance's __dict__ with C-level calls: this runs twice for every read of every connection.
        attributes = self.user.__dict__
        saved = self._get(attributes)
        attributes.update(held.state)
        return saved

    def _leave(self, held: Held, saved: tuple[Any, ...]) -> None:
        attributes = self.user.__dict__
        held.state.update(zip(self.names, self._get(attributes)))
        attributes.update(zip(self.names, saved))

    def run(self) -> None:
        """Open every connection, then keep them: reconnect broken ones, end silent ones. Never returns."""
        try:
            while True:
                now = time.monotonic()
                for held in self.held:
                    if held.error is not None:
                        self._drop(held, now)
                    if held.watcher is None and held.error is None and held.retry_at <= now:
                        self._open(held)
                    elif held.watcher is not None and now - held.last_item > self.silence:
                        held.error = TimeLimitExceeded(f"no complete item from {self.user.transport} in "
                                                       f"{self.silence:g} s")
                        self._drop(held, now)
                pending = [h.retry_at for h in self.held if h.watcher is None]
                wait = min([CHECK_S, *(max(0.0, at - time.monotonic()) for at in pending)])
                self.wake.wait(wait)
                self.wake.clear()
        finally:
            self.close()

    def _open(self, held: Held) -> None:
        user = self.user
        with self._as(held):
            client = user.new_client()
            user.client = client
            user._reported = (0, 0)
            started = time.perf_counter()
            try:
                connect_ms = client.connect()
            except user.stream_errors as error:
                metrics.report_connect(user.environment, user.transport, (time.perf_counter() - started) * 1000.0,
                                       error)
                client.close()
                user.flush_bytes(client)
                held.retry_at = time.monotonic() + held.backoff.next_delay()
                return
            metrics.open_connections[user.transport] += 1
            metrics.report_connect(user.environment, user.transport, connect_ms)
            try:
                user.on_connected(client)
            except user.stream_errors as error:
                held.error = error
            user.flush_bytes(client)
        held.began = held.last_item = time.monotonic()
        if held.error is None:
            client.sock.read_deadline(None)  # silence is timed by `run`, not by the socket
            client.sock.settimeout(0.0)  # read by the callback below, which must never block
            held.watcher = self.loop.io(client.sock.fileno(), 1)
            held.watcher.start(self._readable, held)
        else:
            self._drop(held, held.began, opened=True)

    def _readable(self, held: Held) -> None:
        """In the hub: read what is waiting on one socket, parse it and report; on an error, leave it to `run`."""
        if held.error is not None or held.watcher is None:
            return
        user = self.user
        client = held.state["client"]
        try:
            data = client.sock.recv_ready(READ_SIZE)
        except user.stream_errors as error:
            held.error = error
            data = None
        if data is not None:
            saved = self._enter(held)  # not `_as`: this runs for every read, and a generator costs
            try:
                if user.consume(client, data, time.time()):
                    held.last_item = time.monotonic()
            except user.stream_errors as error:
                held.error = error
            finally:
                user.flush_bytes(client)
                self._leave(held, saved)
        if held.error is not None:
            held.watcher.stop()
            self.wake.set()

    def _drop(self, held: Held, now: float, opened: bool = False) -> None:
        """Report why a connection broke, close it and schedule its reconnect."""
        user = self.user
        error, held.error = held.error, None
        if held.watcher is not None or opened:
            if held.watcher is not None:
                held.watcher.stop()
                held.watcher.close()
                held.watcher = None
            metrics.open_connections[user.transport] -= 1
            if error is not None:
                metrics.report_error(user.environment, user.transport, "stream", error,
                                     (now - held.began) * 1000.0)
        with self._as(held):
            client = user.client
            if client is not None:
                with contextlib.suppress(OSError, ValueError):
                    client.sock.settimeout(0.5)  # a closing handshake may wait a little, in this greenlet
                client.close()
                user.flush_bytes(client)
                user.client = None
        if now - held.began >= STABLE_S:
            held.backoff.reset()
        held.retry_at = time.monotonic() + held.backoff.next_delay()

    def close(self) -> None:
        """Close every connection (Locust stopped the user) and report each subscriber's accounting."""
        user = self.user
        for held in self.held:
            if held.watcher is not None:
                held.watcher.stop()
                held.watcher.close()
                held.watcher = None
                metrics.open_connections[user.transport] -= 1
            with self._as(held):
                if user.client is not None:
                    user.client.close()
                    user.flush_bytes(user.client)
                    user.client = None
                metrics.report_subscriber(user.transport, user.tracker)
