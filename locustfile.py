"""rtcap's users for plain Locust: `locust -f locustfile.py` (web UI) or `locust -f locustfile.py --headless ...`.

Users: PollUser (REST polling with a cursor), StateUser (full-state polling), SSEUser (Server-Sent Events), WebSocketUser (WebSocket feed) and
ChatUser (WebSocket chat room). Options (channel, poll interval, chat rate...) are listed by
`locust -f locustfile.py --help` under "rtcap" and appear in the web UI's start form.
For a step-load staircase add the shape: `locust -f locustfile.py,loadtests/stepload.py --steps 50,100,150`.
"""

from loadtests.catalog import ChatUser, PollUser, SSEUser, StateUser, WebSocketUser

__all__ = ["PollUser", "StateUser", "SSEUser", "WebSocketUser", "ChatUser"]
