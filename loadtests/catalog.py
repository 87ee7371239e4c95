"""Concrete Locust users, one per transport; `locustfile.py` exposes them so plain `locust` runs them.

Run one kind by naming it: `locust -f locustfile.py --headless -u 100 -r 50 SSEUser`.
"""

from __future__ import annotations

from loadtests import abort, gate_hooks, hooks, lag, options, webui  # noqa: F401  (options, recorder, lag, gate, UI)
from loadtests.polling import PollingViewer
from loadtests.sse import SSEListener
from loadtests.ws import WebSocketChatter, WebSocketListener


class PollUser(PollingViewer):
    """A viewer polling `/poll` every `--poll-interval` seconds with a since-cursor and If-None-Match."""


class StateUser(PollingViewer):
    """A viewer re-reading the whole `/state` of its channel every `--poll-interval` seconds (no cursor)."""

    transport = "state"


class SSEUser(SSEListener):
    """A listener holding one `/sse` stream."""


class WebSocketUser(WebSocketListener):
    """A listener holding one `/ws` feed connection."""


class ChatUser(WebSocketChatter):
    """A chatter in a `/ws/chat` room, sending `--chat-rate` messages per second."""


USERS_BY_TRANSPORT = {"poll": PollUser, "state": StateUser, "sse": SSEUser, "ws": WebSocketUser, "chat": ChatUser}
"""Which user class measures which transport, for `rtcap run --transports`."""
