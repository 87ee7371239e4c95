"""rtcap's users for plain Locust: `locust -f locustfile.py` (web UI) or `locust -f locustfile.py --headless ...`.

Users: PollUser (REST polling with a cursor), LongPollUser (long polling), StateUser (full-state polling),
SSEUser (Server-Sent Events), WebSocketUser (WebSocket feed), ChatUser (WebSocket chat room), SignalUser
(WebSocket "changed" notice, then a REST fetch), RpcUser and RestUser (the same request over a WebSocket with
request ids and over HTTP keep-alive), PresenceUser (typing indicators in rooms) and NDJSONUser (newline-delimited
JSON on a held HTTP response); targets/transports.py lists them all. Name the ones to run
(`locust -f locustfile.py SSEUser`); with none named, Locust spreads users over all of them. Options (channel, poll interval, chat rate...) are listed by
`locust -f locustfile.py --help` under "rtcap" and appear in the web UI's start form.
For a step-load staircase add the shape: `locust -f locustfile.py,loadtests/generator/stepload.py --steps 50,100,150`.
"""

from rtcap.loadtests.generator import catalog
from rtcap.loadtests.generator.catalog import *  # noqa: F403  (one user per transport, as targets/transports.py names them)

__all__ = catalog.__all__
