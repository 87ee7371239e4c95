"""The stock polling reference of bench/generator.py: plain gevent + geventhttpclient, nothing recorded.

Each viewer is a greenlet with its own keep-alive `geventhttpclient.HTTPClient` (one connection, like a
browser tab, like rtcap's PollUser) polling the same URL on the same schedule as rtcap's viewers: a random
phase in the first interval, then a fixed tick every `--interval` seconds (a poll that ends after later ticks
skips them, as rtcap's does). Each poll is the same conditional GET (the ETag and Last-Modified of the last
200 sent back as If-None-Match and If-Modified-Since); a 200's JSON body is parsed for its seq and ts only
(what any client must do to time an event), a 304 is just counted. Nothing else is timed or recorded: this
is what a hand-written gevent polling script costs, the floor rtcap's poll users are compared against. It
climbs a staircase and prints one JSON line per step once the step is held:

    python -m rtcap.bench.stock_poll 'http://127.0.0.1:PORT/poll?channel=live' --steps 1000,3000 --hold 20
    {"connections": 1000, "t_start": ..., "t_end": ..., "polls": 20000, "delivered": 19000, "failed": 0}

It stops by itself after the last step (every loop is bounded by the step count and the hold).
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402  (after monkey-patching, as gevent requires)
import json  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import gevent  # noqa: E402
from geventhttpclient import HTTPClient  # noqa: E402

from rtcap.bench.stock_ws import SPAWN_PER_S  # noqa: E402  (the same climb as the stock WebSocket client)


class Counts:
    """Polls answered (200 or 304), events parsed out of 200s, and polls that failed, over this process."""

    polls = 0
    delivered = 0
    failed = 0


def view(host: str, port: int, target: str, interval: float) -> None:
    """One viewer: poll `target` every `interval` seconds on a fixed schedule until the process ends."""
    client = HTTPClient(host, port, concurrency=1, connection_timeout=10, network_timeout=30)
    headers: dict[str, str] = {}
    tick = time.monotonic() + random.uniform(0, interval)
    try:
        while True:
            gevent.sleep(max(0.0, tick - time.monotonic()))
            try:
                response = client.get(target, headers=headers)
                body = response.read()
            except Exception:  # noqa: BLE001  (any failure is one failed poll; the client reconnects)
                Counts.failed += 1
            else:
                status = response.status_code
                if status == 200:
                    etag, modified = response.get("etag"), response.get("last-modified")
                    headers = {k: v for k, v in (("If-None-Match", etag), ("If-Modified-Since", modified)) if v}
                    try:
                        message = json.loads(body)
                        message["seq"], message["ts"]  # noqa: B018  (a client reads both to time the event)
                        Counts.delivered += 1
                    except (ValueError, KeyError, TypeError):
                        Counts.failed += 1
                    Counts.polls += 1
                elif status == 304:
                    Counts.polls += 1
                else:
                    Counts.failed += 1
            now = time.monotonic()
            tick += interval
            if now - tick >= interval:  # later ticks passed while this poll waited: skip them, no burst
                tick += (now - tick) // interval * interval
    finally:
        client.close()


def climb(url: str, steps: list[int], hold_s: float, interval: float) -> None:
    """Start viewers up to each step, hold it `hold_s` seconds, print what they did meanwhile."""
    parts = urlsplit(url)
    target = f"{parts.path or '/'}?{parts.query}" if parts.query else parts.path or "/"
    greenlets: list[gevent.Greenlet] = []
    for step in steps:
        while len(greenlets) < step:
            greenlets.append(gevent.spawn(view, parts.hostname, parts.port or 80, target, interval))
            if len(greenlets) % 100 == 0:
                gevent.sleep(100 / SPAWN_PER_S)
        gevent.sleep(interval + 0.5)  # every new viewer is past its random phase and its first poll
        polls, delivered, t_start = Counts.polls, Counts.delivered, time.time()
        gevent.sleep(hold_s)
        print(json.dumps({"connections": step, "t_start": t_start, "t_end": time.time(),
                          "polls": Counts.polls - polls, "delivered": Counts.delivered - delivered,
                          "failed": Counts.failed}), flush=True)
    gevent.killall(greenlets, block=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rtcap.bench.stock_poll", description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--steps", required=True, help="comma-separated viewer counts")
    parser.add_argument("--hold", type=float, default=20.0, help="seconds each step is held")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between two polls of one viewer")
    args = parser.parse_args(argv)
    climb(args.url, [int(s) for s in args.steps.split(",")], args.hold, args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
