"""Framework-free state of the reference target: channels, replay buffers, subscribers."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from .broker import Broker, MemoryBroker
from .calibration import make_ballast, release_ballast
from .metrics import Metrics


def encode(obj: Any) -> str:
    """Compact single-line JSON (the wire form of every event and control frame)."""
    return json.dumps(obj, separators=(",", ":"))


class Event:
    """One published message, serialised once and shared by every subscriber."""

    __slots__ = ("_notice", "_sse", "_typed", "channel", "data", "kind", "seq", "text", "ts")

    def __init__(
        self, seq: int, ts: float, channel: str, kind: str, obj: dict[str, Any], text: str | None = None
    ) -> None:
        self.seq = seq
        self.ts = ts
        self.channel = channel
        self.kind = kind  # "feed" for channel events, "room" for chat messages
        # `text` when the event was serialised elsewhere (a shared broker): every worker sends the same bytes.
        self.text = encode(obj) if text is None else text
        self.data = self.text.encode()
        self._sse: bytes | None = None
        self._notice: str | None = None
        # A publisher may post its own "type"; then splicing would produce a duplicate key.
        self._typed: str | None = None
        if "type" in obj:
            self._typed = encode({"type": "event", **{k: v for k, v in obj.items() if k != "type"}})

    def sse_frame(self) -> bytes:
        """The SSE wire form `id: <seq>\\ndata: <json>\\n\\n`, built once on first use."""
        if self._sse is None:
            self._sse = b"id: %d\ndata: %s\n\n" % (self.seq, self.data)
        return self._sse

    def notice_text(self) -> str:
        """The signalling form `{"type":"changed","seq","ts","channel"}`: news without the data, built once."""
        if self._notice is None:
            self._notice = encode({"type": "changed", "seq": self.seq, "ts": self.ts, "channel": self.channel})
        return self._notice

    def typed_text(self) -> str:
        """The event JSON with a leading `"type":"event"` (chat feed form), built once on first use."""
        if self._typed is None:
            # Splice instead of re-serialising: the object always starts with '{"seq":'.
            self._typed = '{"type":"event",' + self.text[1:]
        return self._typed


class Subscriber:
    """One streaming connection's outbox: a bounded queue fed by the channels it listens to."""

    __slots__ = ("_closed_event", "ballast", "channels", "closed", "dropped", "id", "queue", "transport")

    def __init__(self, conn_id: str, transport: str, queue_size: int) -> None:
        self.id = conn_id
        self.transport = transport
        self.queue: asyncio.Queue[Any] = asyncio.Queue(queue_size)
        self.channels: set[Channel] = set()
        self.dropped = False  # True when disconnected for being too slow
        self.closed = False
        self._closed_event = asyncio.Event()
        self.ballast: Any = None  # calibration memory held while the stream is open (calibration.py)

    def offer(self, item: Any) -> bool:
        """Queue `item` without waiting; False if closed or the queue is full."""
        if self.closed:
            return False
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            return False
        return True

    def close(self) -> None:
        """Ask the connection that owns this outbox to finish."""
        self.closed = True
        self._closed_event.set()

    async def wait_closed(self) -> None:
        """Return once close() was called."""
        await self._closed_event.wait()


class Channel:
    """A named stream with a per-channel sequence, a bounded replay buffer and subscribers."""

    def __init__(self, name: str, buffer: int, kind: str = "feed") -> None:
        self.name = name
        self.kind = kind
        self.seq = 0
        self.events: deque[Event] = deque(maxlen=buffer)
        self.subscribers: set[Subscriber] = set()
        self.closed = False
        self._name_key = "room" if kind == "room" else "channel"
        self._changed = asyncio.Event()

    @property
    def last(self) -> Event | None:
        """The newest buffered event, if any."""
        return self.events[-1] if self.events else None

    @property
    def etag(self) -> str:
        """Strong ETag naming the channel state: `"<channel>:<latest seq>"`."""
        return f'"{self.name}:{self.seq}"'

    def etag_at(self, seq: int) -> str:
        """The ETag the channel had when `seq` was its latest event."""
        return f'"{self.name}:{seq}"'

    def seq_at(self, cutoff: float) -> int:
        """The latest seq published at or before time `cutoff` (what the channel was then)."""
        seq = self.seq
        # Only the few newest events can be younger than the cutoff: scan from the end.
        for event in reversed(self.events):
            if event.ts <= cutoff:
                return event.seq
            seq = event.seq - 1
        return seq

    def append(self, fields: Mapping[str, Any]) -> Event:
        """Stamp `fields` with seq/ts/name (server values win), buffer the event and wake waiters."""
        seq = self.seq + 1
        ts = time.time()
        obj: dict[str, Any] = {"seq": seq, "ts": ts, self._name_key: self.name}
        for key, value in fields.items():
            obj.setdefault(key, value)
        event = Event(seq, ts, self.name, self.kind, obj)
        self.add(event)
        return event

    def add(self, event: Event) -> None:
        """Buffer an event numbered elsewhere (seq above the channel's) and wake waiters.

        A seq that skips numbers (events a shared broker no longer holds) restarts the buffer, so the
        buffered seqs stay contiguous, as after() assumes.
        """
        if event.seq != self.seq + 1:
            self.events.clear()
        self.seq = event.seq
        self.events.append(event)
        # Wake every long-poller at once and hand future waiters a fresh flag.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def after(self, since: int, limit: int | None = None) -> list[Event]:
        """Buffered events with seq > since, oldest first, at most `limit`."""
        buf = self.events
        if not buf or since >= self.seq:
            return []
        # Buffered seqs are contiguous, so the start index is arithmetic, not a search.
        start = max(0, since + 1 - buf[0].seq)
        stop = len(buf) if limit is None else min(len(buf), start + limit)
        return list(itertools.islice(buf, start, stop))

    def gap(self, since: int) -> bool:
        """True if events after `since` were already evicted from the buffer."""
        return bool(self.events) and since < self.events[0].seq - 1

    async def wait_after(self, after: int, timeout: float) -> bool:
        """Wait until seq > after, the channel closes or `timeout` passes; True if seq > after."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.seq <= after and not self.closed:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                break
        return self.seq > after

    def close(self) -> None:
        """Release every waiter (used at shutdown)."""
        self.closed = True
        self._changed.set()


class LimitReached(Exception):
    """A new channel or room would pass its limit; the message says which and how to raise it."""

    def __init__(self, kind: str, limit: int) -> None:
        # Short enough for a WebSocket close reason (at most 123 bytes).
        super().__init__(f"too many {kind}s: the limit is {limit} (--max-{kind}s)")
        self.kind = kind


class Hub:
    """All channels, chat rooms and streaming subscribers of one app."""

    def __init__(
        self,
        buffer: int = 1000,
        queue_size: int = 1000,
        max_streams: int = 10000,
        metrics: Metrics | None = None,
        ballast: Mapping[str, int] | None = None,
        max_channels: int = 1000,
        max_rooms: int = 10000,
        id_prefix: str = "",
    ) -> None:
        self.buffer = buffer
        self.queue_size = queue_size
        self.max_streams = max_streams
        self.max_channels = max_channels
        self.max_rooms = max_rooms
        self.metrics = metrics or Metrics()
        self.channels: dict[str, Channel] = {}
        self.rooms: dict[str, Channel] = {}
        self.streams: set[Subscriber] = set()
        self.closing = False
        self._ids = itertools.count(1)
        self._id_prefix = id_prefix  # several workers: connection ids (chat "from") stay unique per deployment
        # Who numbers and spreads events: this hub alone, unless a shared broker is attached (broker.py).
        self.broker: Broker = MemoryBroker(self)
        # Calibration: bytes of resident memory each open stream holds, per transport.
        self.ballast = {t: n for t, n in (ballast or {}).items() if n > 0}
        self.metrics.watch_channels(lambda: len(self.channels), lambda: len(self.rooms))

    def channel(self, name: str) -> Channel:
        """The feed channel `name`, created empty on first use (a poller may come first).

        Channels are never freed, so creating one past max_channels raises LimitReached: otherwise
        requests naming ever new channels would grow the server without bound.
        """
        ch = self.channels.get(name)
        if ch is None:
            if len(self.channels) >= self.max_channels:
                self.metrics.refused["channel"].inc()
                raise LimitReached("channel", self.max_channels)
            ch = self.channels[name] = Channel(name, self.buffer)
        return ch

    def room(self, name: str) -> Channel:
        """The chat room `name`, created on first use; LimitReached past max_rooms. Empty rooms are freed."""
        ch = self.rooms.get(name)
        if ch is None:
            if len(self.rooms) >= self.max_rooms:
                self.metrics.refused["room"].inc()
                raise LimitReached("room", self.max_rooms)
            ch = self.rooms[name] = Channel(name, 1, kind="room")  # chat has no replay
        return ch

    def publish(self, name: str, fields: Mapping[str, Any]) -> Event:
        """Publish one event on feed channel `name` and fan it out to its subscribers."""
        ch = self.channel(name)
        event = ch.append(fields)
        self.metrics.published(name).inc()
        self._fan_out(ch, event)
        return event

    def say(self, room: str, fields: Mapping[str, Any]) -> Event:
        """Broadcast one chat message to every member of `room` (per-room seq)."""
        ch = self.room(room)
        event = ch.append(fields)
        self._fan_out(ch, event)
        return event

    def deliver(self, ch: Channel, event: Event) -> None:
        """Buffer an event numbered by a shared broker on this worker's copy of `ch` and fan it out."""
        ch.add(event)
        self._fan_out(ch, event)

    def _fan_out(self, ch: Channel, event: Event) -> None:
        slow = [sub for sub in ch.subscribers if not sub.offer(event)]
        for sub in slow:
            self.drop(sub)

    def connect(self, transport: str) -> Subscriber | None:
        """Admit a new stream, or return None (and count it) when at max_streams or shutting down."""
        if self.closing:
            return None
        if len(self.streams) >= self.max_streams:
            self.metrics.rejected[transport].inc()
            return None
        sub = Subscriber(f"{self._id_prefix}c{next(self._ids)}", transport, self.queue_size)
        if self.ballast:
            sub.ballast = make_ballast(self.ballast.get(transport, 0))
        self.streams.add(sub)
        self.metrics.open[transport].inc()
        return sub

    def disconnect(self, sub: Subscriber) -> None:
        """Forget a stream: leave all channels and rooms, release its slot. Idempotent."""
        self._detach(sub)
        if sub in self.streams:
            self.streams.discard(sub)
            self.metrics.open[sub.transport].dec()
        release_ballast(sub.ballast)  # the calibration memory goes with the connection
        sub.ballast = None
        sub.close()

    def ballast_held(self) -> int:
        """Bytes of calibration ballast held by open streams right now."""
        return sum(len(sub.ballast) for sub in self.streams if sub.ballast is not None)

    def _detach(self, sub: Subscriber) -> None:
        for ch in sub.channels:
            ch.subscribers.discard(sub)
            if ch.kind == "room" and not ch.subscribers:
                self.rooms.pop(ch.name, None)
        sub.channels.clear()

    def drop(self, sub: Subscriber) -> None:
        """Cut off a subscriber whose queue is full (a slow consumer)."""
        if sub.closed:
            return
        sub.dropped = True
        self.metrics.dropped[sub.transport].inc()
        self._detach(sub)
        sub.close()

    def send(self, sub: Subscriber, item: Any) -> bool:
        """Queue a control item (pong, error, ...) for `sub`, dropping it if its queue is full."""
        if sub.offer(item):
            return True
        self.drop(sub)
        return False

    def subscribe(self, sub: Subscriber, name: str, since: int | None = None) -> list[Event]:
        """Add `sub` to channel `name`; returns buffered events after `since` to replay first.

        Replay selection and subscription happen without an await in between, so the
        replay and the live queue neither overlap nor leave a gap.
        """
        ch = self.channel(name)
        replay = ch.after(since) if since is not None else []
        ch.subscribers.add(sub)
        sub.channels.add(ch)
        return replay

    def unsubscribe(self, sub: Subscriber, name: str) -> None:
        """Remove `sub` from feed channel `name` if it was subscribed."""
        ch = self.channels.get(name)
        if ch is not None:
            ch.subscribers.discard(sub)
            sub.channels.discard(ch)

    def join(self, sub: Subscriber, room: str) -> None:
        """Make `sub` a member of chat room `room` (LimitReached if that would create one room too many)."""
        ch = self.room(room)
        ch.subscribers.add(sub)
        sub.channels.add(ch)

    def shutdown(self) -> None:
        """Refuse new streams, end the open ones and release long-pollers."""
        self.closing = True
        for ch in self.channels.values():
            ch.close()
        for sub in list(self.streams):
            sub.close()
