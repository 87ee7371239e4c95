"""The transports rtcap measures: one record each, the only place a transport's facts are written down.

What `--transports` accepts, which `[transports.*]` tables an adapter file may have and what goes in them, the
Locust user that measures each, which steps must show held connections, which SLO limit applies, how a report
names, orders and colours it: all of it is read from REGISTRY, so a list of names cannot drift from the others
and adding a transport means adding a record here (and its client, user and check code).

Pure data, standard library only: targets/ (the adapter), loadtests/ (the Locust-free orchestrator and the
Locust users) and reports/ all import it, and it imports none of them, so no cycle and no heavy import can
arise. It sits in targets/ because targets/ is the package the other two already depend on.

A name that is not here is refused wherever a name comes in (`lookup` raises UnknownTransport). Reports
reading a run directory another tool wrote use `get` instead: rows of a transport rtcap does not know are still
shown, under their own name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

Kind = Literal["polled", "held stream", "request/response", "room"]
"""polled: the client asks for news over HTTP; held stream: the server pushes a channel's events over a
connection the client holds; request/response: answers to the client's own requests; room: what the
clients of a room send each other, fanned out by the server."""

POLLED_FIGURES = ("not_modified", "bytes_saved", "cache_hits", "cache_misses", "cache_hit_rps", "handler_rps",
                  "cache_age_mean_s")
"""The pattern figures of every HTTP-polled transport: 304s, and a server-side cache's hits (reports/summary.py)."""
POLLED_KEYS = ("events", "cursor", "order", "conditional", "cache_header")


class UnknownTransport(ValueError):
    """A transport name with no record: an input error, never something to fall back from."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = list(names)
        super().__init__(f"unknown transport(s) {', '.join(self.names) or '(none)'}; "
                         f"choose from {', '.join(NAMES)}")


@dataclass(frozen=True, kw_only=True)
class Transport:
    """Everything rtcap needs to know about one transport besides the code that speaks it."""

    name: str
    """As written on the command line, in adapter files, steps.csv and summary.json."""
    display: str
    """How reports name it."""
    kind: Kind
    user_class: str
    """The concrete Locust user that measures it (a name: importing this module imports no Locust)."""
    user_module: str
    """The module under rtcap.loadtests.transports that defines `user_class` (it imports Locust)."""
    check_module: str
    """The Locust-free module under rtcap.loadtests.transports whose `open_check` (or, for request/response,
    `check_requests`) proves the transport works before any load (rtcap check-target); the orchestrator
    imports it, and must never import Locust."""
    holds_connection: bool
    """Every user keeps a connection open, so the target must show about as many (flag connections_short)."""
    websocket: bool
    """Its URL is a WebSocket (ws://, wss://; http(s):// is turned into one)."""
    feed: bool
    """Its clients receive the channel's published events: a step that published and delivered none measured
    nothing, and reports weigh it in "connections vs requests"."""
    interval: bool = False
    """Polled on a fixed interval: staleness is bounded below by it (SLO interval + slack, reports/slo.py)."""
    adapter_keys: tuple[str, ...] = ()
    """Keys its `[transports.NAME]` table may have besides `url` and the message keys."""
    placeholders: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    """The {placeholders} its url / subscribe / send templates may use, where not just {channel} (send: none)."""
    pattern_figures: tuple[str, ...] = ()
    """steps.csv columns that become its summary.json "patterns" (reports/summary.py)."""
    connections_per_user: int = 1
    """Sockets one user holds: the open-file preflight counts them (loadtests/run/validate.py)."""
    crowd: bool = False
    """Its listener can hold many connections read from the event loop (--held-per-user; transports/crowd.py)."""
    shown: int
    """Position in report tables: polling from most to least wasteful, then push."""
    colour: int | None = None
    """Fixed index into the report palette (None: picked from the spare colours by name)."""
    default: bool = False
    """Measured by `rtcap run` when --transports is not given (RUN_DEFAULT)."""

    @property
    def polled(self) -> bool:
        """The client asks over HTTP (a short, long or full-state poll)."""
        return self.kind == "polled"

    @property
    def request_response(self) -> bool:
        """Answers to requests: latency is the response time, throughput is requests/s."""
        return self.kind == "request/response"

    @property
    def delta_polled(self) -> bool:
        """Polled on an interval from a cursor: an answer carries only what changed, so its bytes split into
        a per-request overhead and a per-event payload (reports/tradeoff.py)."""
        return self.interval and "cursor" in self.template_values("url")

    def template_values(self, key: str) -> tuple[str, ...]:
        """The placeholders template `key` (url, subscribe, send) of this transport may use."""
        return self.placeholders.get(key, () if key == "send" else ("channel",))


def _places(**values: tuple[str, ...]) -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType(values)


REGISTRY: tuple[Transport, ...] = (
    Transport(name="poll", display="Delta polling", kind="polled", user_class="PollUser", user_module="polling", check_module="poll_check",
              holds_connection=False,
              websocket=False, feed=True, interval=True, adapter_keys=POLLED_KEYS,
              placeholders=_places(url=("channel", "cursor")), pattern_figures=POLLED_FIGURES, shown=1, colour=0,
              default=True),
    Transport(name="longpoll", display="Long polling", kind="polled", user_class="LongPollUser", user_module="longpoll", check_module="poll_check",
              holds_connection=True, websocket=False, feed=True, adapter_keys=POLLED_KEYS,
              placeholders=_places(url=("channel", "cursor")), pattern_figures=POLLED_FIGURES, shown=2, colour=4),
    Transport(name="state", display="Full-state polling", kind="polled", user_class="StateUser", user_module="polling", check_module="poll_check",
              holds_connection=False, websocket=False, feed=True, interval=True,
              adapter_keys=("events", "order", "conditional", "cache_header"), pattern_figures=POLLED_FIGURES,
              shown=0, colour=5),
    Transport(name="sse", display="SSE", kind="held stream", user_class="SSEUser", user_module="sse", check_module="sse_client",
              holds_connection=True,
              websocket=False, feed=True, crowd=True, shown=3, colour=1, default=True),
    Transport(name="ws", display="WebSocket", kind="held stream", user_class="WebSocketUser", user_module="ws", check_module="ws_client",
              holds_connection=True,
              websocket=True, feed=True, crowd=True, adapter_keys=("subscribe", "resume_url"), shown=4, colour=2,
              default=True),
    Transport(name="chat", display="WebSocket chat", kind="room", user_class="ChatUser", user_module="ws", check_module="ws_client",
              holds_connection=True,
              websocket=True, feed=False, adapter_keys=("subscribe", "room", "send"),
              placeholders=_places(url=("channel", "room"), subscribe=("channel", "room"),
                                   send=("channel", "room", "n", "padding")), shown=5, colour=3),
    Transport(name="signal", display="Signalling (WebSocket notice + REST fetch)", kind="held stream",
              user_class="SignalUser", user_module="signalling", check_module="check_patterns",
              holds_connection=True, websocket=True, feed=True,
              adapter_keys=("fetch", "events", "cursor", "order", "subscribe", "notify_match", "notify_seq"),
              pattern_figures=("round_trips", "notifications", "round_trips_per_event"), connections_per_user=2,
              shown=6),
    Transport(name="rpc", display="Request/response over WebSocket", kind="request/response", user_class="RpcUser", user_module="rpc", check_module="check_patterns",
              holds_connection=True, websocket=True, feed=False,
              adapter_keys=("request", "response_id", "response_match", "status", "subscribe"),
              pattern_figures=("round_trips", "unanswered", "in_flight", "request_p50_ms", "request_p99_ms"), shown=7),
    Transport(name="rest", display="Request/response over REST", kind="request/response", user_class="RestUser", user_module="rest", check_module="check_patterns",
              holds_connection=False, websocket=False, feed=False, adapter_keys=("conditional",),
              pattern_figures=("round_trips", "not_modified", "request_p50_ms", "request_p99_ms"), shown=8),
    Transport(name="presence", display="Typing indicators", kind="room", user_class="PresenceUser", user_module="presence", check_module="check_patterns",
              holds_connection=True, websocket=True, feed=False, adapter_keys=("room", "send", "presence", "sender",
                                                                                  "subscribe"),
              placeholders=_places(url=("channel", "room"), subscribe=("channel", "room", "client"),
                                   send=("channel", "room", "n", "client")),
              pattern_figures=("messages_sent", "messages_received", "msgs_in_per_s", "msgs_out_per_s", "room_size",
                               "fanout"), shown=9),
    Transport(name="ndjson", display="NDJSON stream", kind="held stream", user_class="NDJSONUser", user_module="ndjson",
              check_module="ndjson_client", holds_connection=True, websocket=False, feed=True, crowd=True,
              adapter_keys=("resume_url",), shown=10),
)
"""Every transport, in the order the command line and adapter errors list them."""
NAMES: tuple[str, ...] = tuple(t.name for t in REGISTRY)
BY_NAME: Mapping[str, Transport] = MappingProxyType({t.name: t for t in REGISTRY})
RUN_DEFAULT: tuple[str, ...] = tuple(t.name for t in REGISTRY if t.default)


def lookup(name: str) -> Transport:
    """The record of `name`; UnknownTransport (a ValueError listing the choices) if there is none."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise UnknownTransport([name]) from None


def get(name: str) -> Transport | None:
    """The record of `name`, or None for a transport a run directory names but rtcap does not know."""
    return BY_NAME.get(name)


def checked(names: Iterable[str]) -> list[str]:
    """`names` as a list if every one is known (and there is one); UnknownTransport naming the others."""
    names = list(names)
    unknown = [name for name in names if name not in BY_NAME]
    if unknown or not names:
        raise UnknownTransport(unknown)
    return names


def where(test: Callable[[Transport], bool]) -> tuple[str, ...]:
    """Names of the transports passing `test`, in registry order."""
    return tuple(t.name for t in REGISTRY if test(t))
