"""A deployment-wide broker on Redis: seq numbers, replay buffers and fan-out shared by every worker.

One Lua script per publish, atomic in Redis, assigns the channel's next seq (INCR), stamps `ts` with Redis's
clock (so seq order and ts order agree whichever worker published), appends the event's JSON to the channel's
list (capped at --buffer, like the in-process replay buffer) and PUBLISHes it on the deployment's bus. The
JSON is built once, in the script, so every worker sends the same bytes.

Each worker keeps a copy of every channel it has used (the hub's Channel), fed only from Redis: live from
the bus, in seq order, and by `sync()`, which reads the seq counter and the missing tail of the list in one
round trip. Routes call `sync()` before reading (polls, Last-Event-ID and `since` replay), so any worker
answers with the deployment's state; a publish reaches this worker's subscribers through the bus like every
other worker's. Events that arrive ahead of a gap are held until the gap is fetched, so subscribers see each
seq once and in order; a gap Redis no longer holds (evicted) stays a gap, which clients count as loss.

When Redis goes away the worker keeps serving its copy (nothing can be published meanwhile: /publish answers
503), reconnects with a short backoff, and re-reads every channel; publishes never number below what the
publishing worker has seen, so a Redis restarted empty continues the sequences instead of restarting them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .broker import BrokerUnavailable
from .hub import Channel, Event, Hub, encode

log = logging.getLogger("rtcap.target.broker")

IO_TIMEOUT_S = 1.0  # a Redis call that takes longer is treated as an outage
LISTEN_POLL_S = 1.0  # the bus reader wakes at least this often (to notice cancellation)
RECONNECT_MIN_S = 0.05
RECONNECT_MAX_S = 0.5
REPAIR_ATTEMPTS = 3  # re-reads of a channel with a gap before the held events are delivered past it
MAX_QUEUED_SAYS = 10_000  # chat messages waiting for Redis on one worker

# KEYS: seq counter, list. ARGV: floor, ',"channel":"name"', rest of the JSON object, list cap, bus, bus header.
PUBLISH_LUA = """
local seq = redis.call('INCR', KEYS[1])
local floor = tonumber(ARGV[1])
if seq <= floor then
  seq = floor + 1
  redis.call('SET', KEYS[1], seq)
end
local t = redis.call('TIME')
local text = '{"seq":' .. seq .. ',"ts":' .. t[1] .. '.' .. string.format('%06d', tonumber(t[2])) .. ARGV[2] .. ARGV[3]
redis.call('RPUSH', KEYS[2], text)
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[4]), -1)
redis.call('PUBLISH', ARGV[5], ARGV[6] .. text)
return text
"""

# KEYS: seq counter, list. ARGV: the seq this worker has, list cap. Returns {seq, events after ARGV[1]...}.
SYNC_LUA = """
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
local have = tonumber(ARGV[1])
if seq <= have then return {seq} end
local missing = math.min(seq - have, tonumber(ARGV[2]))
local out = redis.call('LRANGE', KEYS[2], -missing, -1)
table.insert(out, 1, seq)
return out
"""

# KEYS: seq counter. ARGV: floor. Raises the counter to the floor (a Redis restarted empty continues from it).
FLOOR_LUA = """
if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return 0
"""


def safe_url(url: str) -> str:
    """The URL without a password, for messages."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    return f"{scheme}{sep}{'***@' if at else ''}{host}" if sep else url


class RedisBroker:
    """Publishes through Redis and keeps this worker's channels in step with it (see the module docstring)."""

    kind = "redis"

    def __init__(self, hub: Hub, url: str, namespace: str) -> None:
        self.hub = hub
        self.url = url
        self.prefix = f"rtcap:{namespace}:"
        self.bus = self.prefix + "bus"
        self.outages = 0
        self._client: Redis | None = None
        self._synced = asyncio.Event()  # set while subscribed to the bus and caught up
        self._tasks: list[asyncio.Task[None]] = []
        self._repairs: dict[str, asyncio.Task[None]] = {}
        self._held: dict[str, dict[int, Event]] = {}  # per feed channel: events received ahead of a gap
        self._known: set[str] = set()  # feed channels read from Redis at least once
        self._says: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(MAX_QUEUED_SAYS)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Connect, subscribe to the bus and catch up every channel; BrokerUnavailable if Redis cannot be reached."""
        self._client = Redis.from_url(
            self.url, decode_responses=True, socket_timeout=IO_TIMEOUT_S, socket_connect_timeout=IO_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),  # no hidden retries: an outage shows at once, the bus reader reconnects
        )
        self._publish = self._client.register_script(PUBLISH_LUA)
        self._sync = self._client.register_script(SYNC_LUA)
        self._floor = self._client.register_script(FLOOR_LUA)
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            await self.close()
            raise BrokerUnavailable(f"cannot reach redis at {safe_url(self.url)}: {exc}") from exc
        self._tasks = [asyncio.create_task(self._listen(), name="rtcap-bus"),
                       asyncio.create_task(self._send_says(), name="rtcap-chat")]
        try:
            await asyncio.wait_for(self._synced.wait(), 10 * IO_TIMEOUT_S)
        except TimeoutError:
            await self.close()
            raise BrokerUnavailable(f"redis at {safe_url(self.url)} did not answer the subscription") from None

    async def close(self) -> None:
        """Stop the bus reader, the chat sender and repairs, then disconnect. Idempotent."""
        tasks = [*self._tasks, *self._repairs.values()]
        self._tasks, self._repairs = [], {}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            client, self._client = self._client, None
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()

    def describe(self) -> dict[str, Any]:
        """The broker section of /healthz."""
        return {"kind": self.kind, "connected": self._synced.is_set(), "outages": self.outages}

    # ------------------------------------------------------------------ publishing

    def _keys(self, kind: str, name: str) -> list[str]:
        return [f"{self.prefix}seq:{kind}:{name}", f"{self.prefix}buf:{kind}:{name}"]

    async def _run_publish(self, ch: Channel, fields: Mapping[str, Any]) -> str:
        name_key = "room" if ch.kind == "room" else "channel"
        rest = encode({k: v for k, v in fields.items() if k not in ("seq", "ts", name_key)})
        args = [ch.seq, f',"{name_key}":{encode(ch.name)}', "}" if rest == "{}" else "," + rest[1:],
                1 if ch.kind == "room" else self.hub.buffer, self.bus, f"{ch.kind}:{ch.name}\n"]
        return await self._publish(keys=self._keys(ch.kind, ch.name), args=args)

    async def publish(self, name: str, fields: Mapping[str, Any]) -> Event:
        """Number and publish one event through Redis; it reaches this worker's subscribers through the bus too."""
        ch = self.hub.channel(name)
        try:
            text = await self._run_publish(ch, fields)
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"redis unavailable: {exc}") from exc
        self.hub.metrics.published(name).inc()
        return _event(ch, text)

    def say(self, room: str, fields: Mapping[str, Any]) -> None:
        """Queue a chat message; one sender per worker keeps each connection's messages in order."""
        try:
            self._says.put_nowait((room, dict(fields)))
        except asyncio.QueueFull:
            log.warning("chat message to room %s dropped: %d messages already wait for redis", room, MAX_QUEUED_SAYS)

    async def _send_says(self) -> None:
        while True:
            room, fields = await self._says.get()
            ch = self.hub.rooms.get(room)
            if ch is None:  # every member on this worker left meanwhile; the room still exists elsewhere
                ch = Channel(room, 1, kind="room")
            try:
                await self._run_publish(ch, fields)
            except (RedisError, OSError) as exc:
                log.warning("chat message to room %s lost: redis unavailable: %s", room, exc)

    # ------------------------------------------------------------------ receiving

    async def _listen(self) -> None:
        """Read the bus until cancelled; after every (re)subscription, catch up every channel from the lists."""
        assert self._client is not None
        backoff = RECONNECT_MIN_S
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.bus)
                # Subscribed first, then caught up: an event published in between is in both, and counted once.
                await self._catch_up()
                self._synced.set()
                backoff = RECONNECT_MIN_S
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=LISTEN_POLL_S)
                    if message is not None:
                        self._receive(message["data"])
            except (RedisError, OSError) as exc:
                if self._synced.is_set():
                    self.outages += 1
                    log.warning("redis at %s unavailable (%s); serving this worker's copy, reconnecting",
                                safe_url(self.url), exc)
                self._synced.clear()
            except Exception:  # a bug or a foreign message must not end delivery for good: log, reconnect, re-read
                log.exception("bus reader failed; reconnecting")
                self._synced.clear()
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_S)

    async def _catch_up(self) -> None:
        """Raise each counter to what this worker has seen (Redis may have restarted empty), then sync it."""
        for name in list(self.hub.channels):
            ch = self.hub.channels[name]
            keys = self._keys(ch.kind, name)
            await self._floor(keys=keys[:1], args=[ch.seq])
            await self._sync_channel(ch, strict=True)

    def _receive(self, data: str) -> None:
        header, _, text = data.partition("\n")
        kind, _, name = header.partition(":")
        ch = (self.hub.rooms if kind == "room" else self.hub.channels).get(name)
        if ch is None:
            return  # nobody here uses it; a first local use syncs it from the list
        event = _event(ch, text)
        if event.seq <= ch.seq:
            return  # already here (through sync)
        if ch.kind == "room" or event.seq == ch.seq + 1:
            self.hub.deliver(ch, event)
            self._drain(ch)
            return
        held = self._held.setdefault(name, {})
        if len(held) < self.hub.buffer:
            held[event.seq] = event
        repair = self._repairs.get(name)
        if repair is None or repair.done():
            self._repairs[name] = asyncio.create_task(self._repair(ch), name=f"rtcap-repair-{name}")

    def _drain(self, ch: Channel) -> None:
        """Deliver held events that are next in line."""
        held = self._held.get(ch.name)
        if not held:
            return
        while ch.seq + 1 in held:
            self.hub.deliver(ch, held.pop(ch.seq + 1))
        for seq in [s for s in held if s <= ch.seq]:
            del held[seq]
        if not held:
            del self._held[ch.name]

    async def _repair(self, ch: Channel) -> None:
        """Fetch a gap from the list; past REPAIR_ATTEMPTS the held events go out past it (counted as loss)."""
        for _ in range(REPAIR_ATTEMPTS):
            if not await self._sync_channel(ch) or ch.name not in self._held:
                return
        held = self._held.pop(ch.name, {})
        for seq in sorted(held):
            if seq > ch.seq:
                self.hub.deliver(ch, held[seq])

    # ------------------------------------------------------------------ reading shared state

    async def sync(self, name: str) -> None:
        """Catch this worker's copy of `name` up with Redis; during an outage the copy is served as it is."""
        await self._sync_channel(self.hub.channel(name))

    async def _sync_channel(self, ch: Channel, strict: bool = False) -> bool:
        """Apply the events Redis has after this copy's seq; False if Redis could not be read (raises if strict)."""
        if self._client is None:
            return False
        try:
            reply = await self._sync(keys=self._keys(ch.kind, ch.name), args=[ch.seq, self.hub.buffer])
        except (RedisError, OSError):
            if strict:
                raise
            return False
        # The first read of a channel is history from before anyone here subscribed: buffered, not fanned out.
        first = ch.name not in self._known
        self._known.add(ch.name)
        for text in reply[1:]:
            event = _event(ch, text)
            if event.seq <= ch.seq:
                continue  # already here (through the bus)
            # A seq past ch.seq + 1 here was evicted from the list: a real gap, which clients count as loss.
            if first:
                ch.add(event)
            else:
                self.hub.deliver(ch, event)
        self._drain(ch)
        return True


def _event(ch: Channel, text: str) -> Event:
    obj = json.loads(text)
    return Event(obj["seq"], obj["ts"], ch.name, ch.kind, obj, text=text)
