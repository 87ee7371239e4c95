"""Long polling: an abstract Locust viewer whose every request is held by the server until there is news, and
`LongPollUser`, the longpoll transport's concrete user.

It is the polling viewer (same cursor, validators, byte counts and delivery reports) without a schedule: it
asks again as soon as an answer is in, so its requests per second follow the event rate, not a poll interval.
A held request is an open connection for as long as it waits, like an SSE stream; a wait that ends with no
news (a 304, or a 200 with no events) is an ordinary answer, not an error.
"""

from __future__ import annotations

import time

from rtcap.loadtests.transports.backoff import Backoff
from rtcap.loadtests.transports.polling import PollingViewer


class LongPollViewer(PollingViewer):
    """Re-polls the `longpoll` transport at once after each answer; backs off (with jitter) after a failure."""

    abstract = True
    transport = "longpoll"
    holds = True

    def on_start(self) -> None:
        """Set up as a polling viewer, with a backoff for failed requests (a refused poll returns at once)."""
        super().on_start()
        self.backoff = Backoff(cap=self.settings.reconnect_max)

    def poll_interval(self) -> float:
        """No schedule: the server's wait paces the requests."""
        return 0.0

    def wait_time(self) -> float:
        """Ask again at once after an answer; after a failure, wait a jittered, growing backoff first."""
        delay = 0.0
        if self.last_failed:
            delay = self.backoff.next_delay()
        else:
            self.backoff.reset()
        # The next poll is charged from when it may go, as a short poll is charged from its tick.
        self.next_poll = time.monotonic() + delay
        return delay


class LongPollUser(LongPollViewer):
    """A viewer long polling `/poll?wait=...`: each request is held until news, then it asks again at once."""
