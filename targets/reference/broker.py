"""Who numbers events and spreads them: this process alone (`MemoryBroker`), or a deployment of workers.

The routes never ask which broker runs. They publish with `publish()` (chat with `say()`) and call `sync()`
before they read a channel's state, so a worker answers for the whole deployment; with the memory broker
both are the hub's own synchronous operations. `redis_broker.RedisBroker` is the shared one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .hub import Event, Hub

BROKER_KINDS = ("memory", "redis")
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def broker_kind(broker: str) -> str:
    """"memory" or "redis" for a --broker value ("memory", "redis", or a Redis URL); ValueError otherwise."""
    if broker in BROKER_KINDS:
        return broker
    if broker.startswith(REDIS_SCHEMES):
        return "redis"
    raise ValueError(f"broker must be memory, redis or a redis:// URL, got {broker!r}")


@dataclass(frozen=True)
class Deployment:
    """This process's place in a deployment: worker `index` of `workers`, sharing the broker at `url` (None:
    the in-process memory broker) under key `namespace`."""

    index: int = 0
    workers: int = 1
    url: str | None = None
    namespace: str = ""

    @property
    def ticks(self) -> bool:
        """Only worker 0 runs the built-in ticker: it publishes once per deployment, not once per worker."""
        return self.index == 0

    def make_broker(self, hub: Hub) -> Broker:
        """The broker this worker publishes and reads through."""
        if self.url is None:
            return MemoryBroker(hub)
        from .redis_broker import RedisBroker  # deferred: the memory broker needs no redis import

        return RedisBroker(hub, self.url, self.namespace)


class BrokerUnavailable(Exception):
    """The shared broker cannot be reached right now: the publish did not happen."""


class Broker(Protocol):
    """What a route needs from a broker."""

    kind: str

    async def start(self) -> None:
        """Connect (and start listening) before the server accepts connections."""

    async def close(self) -> None:
        """Stop listening and disconnect; idempotent."""

    async def publish(self, name: str, fields: Mapping[str, Any]) -> Event:
        """Number one event on feed channel `name` once for the deployment and deliver it to every subscriber.

        Raises BrokerUnavailable when that cannot happen now (the caller answers 503).
        """
        ...

    def say(self, room: str, fields: Mapping[str, Any]) -> None:
        """Broadcast one chat message to `room` on every worker (called from a synchronous message handler)."""

    async def sync(self, name: str) -> None:
        """Bring this worker's copy of feed channel `name` up to the shared state before it is read."""

    def describe(self) -> dict[str, Any]:
        """The broker section of /healthz."""
        ...


class MemoryBroker:
    """Today's single process: the hub numbers, buffers and fans out by itself; nothing to synchronise."""

    kind = "memory"

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def start(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Nothing to disconnect."""

    async def publish(self, name: str, fields: Mapping[str, Any]) -> Event:
        """Publish on the hub directly."""
        return self.hub.publish(name, fields)

    def say(self, room: str, fields: Mapping[str, Any]) -> None:
        """Broadcast on the hub directly."""
        self.hub.say(room, fields)

    async def sync(self, name: str) -> None:
        """The hub is the state: always in sync."""

    def describe(self) -> dict[str, Any]:
        """The broker section of /healthz."""
        return {"kind": self.kind}
