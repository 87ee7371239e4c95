"""The stock reference client of bench/generator.py: plain gevent + websocket-client, nothing recorded.

Each connection is a greenlet blocked in `WebSocket.recv()`; a message is parsed for its seq and ts only (what
any client must do to time it) and counted. This is what a hand-written gevent load script costs, the
floor rtcap's users are compared against. It climbs the same staircase as the rtcap arm and prints one JSON
line per step once the step is held:

    python -m rtcap.bench.stock_ws ws://127.0.0.1:PORT/ws?channel=live --steps 1000,3000 --hold 20
    {"connections": 1000, "t_start": ..., "t_end": ..., "delivered": 200000, "failed": 0}

It stops by itself after the last step (every loop is bounded by the step count and the hold).
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402  (after monkey-patching, as gevent requires)
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
import websocket  # noqa: E402

SPAWN_PER_S = 1000.0
"""Connections opened per second while climbing to a step (Locust's --step-spawn-rate default is lower)."""


class Counts:
    """Messages received by every connection of this process, and connections that failed."""

    delivered = 0
    failed = 0


def hold(url: str) -> None:
    """Open one connection and receive until it breaks (counted as a failure) or the process ends."""
    try:
        ws = websocket.create_connection(url, timeout=60)
    except (OSError, websocket.WebSocketException):
        Counts.failed += 1
        return
    try:
        while True:
            message = json.loads(ws.recv())
            message["seq"], message["ts"]  # noqa: B018  (a client reads both to time the event)
            Counts.delivered += 1
    except (OSError, ValueError, KeyError, websocket.WebSocketException):
        Counts.failed += 1


def climb(url: str, steps: list[int], hold_s: float) -> None:
    """Open connections up to each step, hold it `hold_s` seconds, print what it received meanwhile."""
    greenlets: list[gevent.Greenlet] = []
    for step in steps:
        while len(greenlets) < step:
            greenlets.append(gevent.spawn(hold, url))
            if len(greenlets) % 100 == 0:
                gevent.sleep(100 / SPAWN_PER_S)
        gevent.sleep(2.0)  # the last handshakes complete
        delivered, t_start = Counts.delivered, time.time()
        gevent.sleep(hold_s)
        print(json.dumps({"connections": step, "t_start": t_start, "t_end": time.time(),
                          "delivered": Counts.delivered - delivered, "failed": Counts.failed}), flush=True)
    gevent.killall(greenlets, block=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rtcap.bench.stock_ws", description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--steps", required=True, help="comma-separated connection counts")
    parser.add_argument("--hold", type=float, default=20.0, help="seconds each step is held")
    args = parser.parse_args(argv)
    climb(args.url, [int(s) for s in args.steps.split(",")], args.hold)
    return 0


if __name__ == "__main__":
    sys.exit(main())
