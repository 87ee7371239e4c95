"""A small SSE server that is not rtcap's, with faults on command: the fault tests' target.

Stdlib only (http.server on threads). Events are published from outside (POST /publish with a JSON body that
carries the publisher's seq and ts, as an adapter in publish mode "http" sends them) and pushed to every
open GET /sse stream of the channel. GET /healthz answers 200.

    --fail-every N   answer 500 with a reason to every Nth publish (a failing publisher)...
    --fail-after K   ...once K publishes went through (so that a pre-load check passes first)
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

EVENTS: list[bytes] = []
CHANGED = threading.Condition()
PUBLISHES = [0]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fail_every = 0
    fail_after = 0

    def log_message(self, *_args: object) -> None:
        pass

    def _answer(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = urlsplit(self.path).path
        if path == "/healthz":
            self._answer(200, b"ok")
        elif path == "/sse":
            self._stream()
        else:
            self._answer(404, b"not found")

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if urlsplit(self.path).path != "/publish":
            self._answer(404, b"not found")
            return
        with CHANGED:
            PUBLISHES[0] += 1
            if self.fail_every and PUBLISHES[0] > self.fail_after and PUBLISHES[0] % self.fail_every == 0:
                self._answer(500, b'{"error": "broker unavailable"}')
                return
            EVENTS.append(body)
            CHANGED.notify_all()
        self._answer(200, b"{}")

    def _stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        with CHANGED:
            sent = len(EVENTS)
        try:
            while True:
                with CHANGED:
                    CHANGED.wait_for(lambda: len(EVENTS) > sent, timeout=15)
                    new = EVENTS[sent:]
                sent += len(new)
                chunk = b"".join(b"data: " + json.dumps(json.loads(e)).encode() + b"\n\n" for e in new) or b": hb\n\n"
                self.wfile.write(chunk)
                self.wfile.flush()
        except OSError:
            return


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fail-every", type=int, default=0)
    parser.add_argument("--fail-after", type=int, default=0)
    args = parser.parse_args()
    Handler.fail_every, Handler.fail_after = args.fail_every, args.fail_after
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
