"""The per-connection program behind websocketd: one JSON line per tick on stdout.

    python ticker.py --rate 2 [--payload 0]

websocketd starts one copy of this program for every WebSocket connection and sends each line it prints
as one text message. Ticks are aligned to the wall clock: tick N happens at N / rate seconds since the
Unix epoch, and the line for it is

    {"seq": N, "ts": N / rate}                      (plus "pad": "xxx..." when --payload > 0)

so every connection gets the same seq at the same moment with the same ts, and `receive time - ts` is the
delivery latency (including how late this process woke up). The first line is the next tick after the
connection opened. The program exits when websocketd closes its stdin (the client went away) or its
stdout. Standard library only; reads nothing from the network.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import select
import sys
import time


def line_for(seq: int, rate: float, pad: str) -> str:
    """The JSON line for tick `seq` (no newline)."""
    event: dict[str, object] = {"seq": seq, "ts": seq / rate}
    if pad:
        event["pad"] = pad
    return json.dumps(event, separators=(", ", ": "))


def wait_until(deadline: float) -> bool:
    """Sleep until `deadline` (time.time()), watching stdin; False once stdin is closed (client gone)."""
    while True:
        remaining = deadline - time.time()
        if remaining <= 0:
            return True
        ready, _, _ = select.select([sys.stdin], [], [], remaining)
        if ready:
            # The client sent a message (ignored) or websocketd closed the pipe (end of file).
            if not os.read(sys.stdin.fileno(), 65536):
                return False


def run(rate: float, payload: int) -> int:
    """Print one line per tick until the client goes away."""
    pad = "x" * payload
    seq = math.floor(time.time() * rate) + 1
    while wait_until(seq / rate):
        try:
            sys.stdout.write(line_for(seq, rate, pad) + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            # websocketd closed our stdout; keep the interpreter from failing to flush it at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            break
        seq += 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=float(os.environ.get("TICKER_RATE", "2")),
                        help="ticks per second (default 2, or $TICKER_RATE)")
    parser.add_argument("--payload", type=int, default=int(os.environ.get("TICKER_PAYLOAD", "0")),
                        help="length of the `pad` string in each line (default 0: no pad field)")
    args = parser.parse_args(argv)
    if not 0 < args.rate <= 1000:
        parser.error("--rate must be in (0, 1000]")
    if not 0 <= args.payload <= 1_000_000:
        parser.error("--payload must be 0-1000000")
    try:
        return run(args.rate, args.payload)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
