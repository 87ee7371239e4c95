"""Concrete Locust users, one per transport; `locustfile.py` exposes them so plain `locust` runs them.

Run one kind by naming it: `locust -f locustfile.py --headless -u 100 -r 50 SSEUser`. Each class is the
`user_class` its transport's record names (targets/transports.py), which is how `rtcap run` picks it:
`__all__` is built from those names, so a record whose class is missing fails locustfile.py's `import *`.
"""

from __future__ import annotations

from rtcap.loadtests.generator import abort, gate_hooks, hooks, lag, options, webui  # noqa: F401  (options, recorder, lag, gate, UI)
from rtcap.loadtests.transports.longpoll import LongPollViewer
from rtcap.loadtests.transports.polling import PollingViewer
from rtcap.loadtests.transports.presence import PresenceUser as PresenceChatter
from rtcap.loadtests.transports.rest import RestRequester
from rtcap.loadtests.transports.rpc import WebSocketRequester
from rtcap.loadtests.transports.signalling import SignallingSubscriber
from rtcap.loadtests.transports.sse import SSEListener
from rtcap.loadtests.transports.ws import WebSocketChatter, WebSocketListener
from rtcap.targets.transports import REGISTRY


class PollUser(PollingViewer):
    """A viewer polling `/poll` every `--poll-interval` seconds with a since-cursor and If-None-Match."""


class StateUser(PollingViewer):
    """A viewer re-reading the whole `/state` of its channel every `--poll-interval` seconds (no cursor)."""

    transport = "state"


class LongPollUser(LongPollViewer):
    """A viewer long polling `/poll?wait=...`: each request is held until news, then it asks again at once."""


class SSEUser(SSEListener):
    """A listener holding one `/sse` stream."""


class WebSocketUser(WebSocketListener):
    """A listener holding one `/ws` feed connection."""


class ChatUser(WebSocketChatter):
    """A chatter in a `/ws/chat` room, sending `--chat-rate` messages per second."""


class SignalUser(SignallingSubscriber):
    """Hears "changed" on `/ws?notify=1`, then fetches the events over REST (`/poll?since=N`, keep-alive)."""


class RpcUser(WebSocketRequester):
    """Sends `--request-rate` id-tagged `get` requests per second over `/ws/rpc`, matching responses by id."""


class RestUser(RestRequester):
    """Sends `--request-rate` `GET /latest` requests per second on one keep-alive connection, with If-None-Match."""


class PresenceUser(PresenceChatter):
    """Sends `--typing-rate` typing indicators per second in a `/ws/chat` room of `--room-size` users."""


__all__ = [t.user_class for t in REGISTRY]
