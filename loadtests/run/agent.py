"""`rtcap agent`: serves the readings the local sampler takes, for a run whose target is on another host.

Run it next to the server (`rtcap agent --pid 4242`, `--port 8000` or `--cgroup /sys/fs/cgroup/app.slice`);
the adapter's `process.agent_url` points rtcap at it and loadtests/run/agent_probe.py polls it. Each
`GET /sample` is one reading of the watched process(es), taken then with the same ProcessProbe the local
sampler uses (CPU percent is measured since the previous GET), as a JSON list of Sample dicts. Once the
process is gone the agent keeps serving and answers every `GET /sample` with 410 `{"state": "gone", ...}`,
which the probe turns into TargetGone, as a local probe raises it. `GET /healthz` says what it watches.

The server is the standard library's ThreadingHTTPServer, not a framework: the agent is installed on hosts
that run someone else's server, answers two GETs a second at most, and must add nothing to measure beside
that server (no event loop, no dependency beyond psutil, which rtcap needs anyway).

It has no authentication and answers anyone who reaches it: it listens on loopback unless --bind names
another address (then reach it through a firewall rule or an SSH tunnel you trust).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psutil

from rtcap.loadtests import __version__
from rtcap.loadtests.run.agent_probe import GONE
from rtcap.loadtests.run.observe import ObserveError, listening_pid
from rtcap.loadtests.run.process_probe import CgroupProcsProbe, ProcessProbe
from rtcap.loadtests.run.sampler import read_sockstat
from rtcap.loadtests.values import bind_host, number
from rtcap.targets.adapter import PROCESS_SCOPES

DEFAULT_LISTEN_PORT = 9120


class Watch:
    """The watched process(es) behind one lock: psutil objects are not thread-safe, and CPU percent is
    measured between consecutive reads, so reads are taken one at a time."""

    def __init__(self, probe: ProcessProbe, what: str) -> None:
        self.probe = probe
        self.what = what
        self.gone: str | None = None
        self._lock = threading.Lock()

    def reading(self) -> tuple[int, Any]:
        """(HTTP status, JSON body) of one GET /sample."""
        with self._lock:
            if self.gone is None:
                try:
                    return 200, [asdict(self.probe.read(read_sockstat()))]
                except psutil.NoSuchProcess as error:  # TargetGone included: a zombie has exited too
                    self.gone = str(error) or f"{self.what} exited"
                except (psutil.Error, OSError) as error:
                    # Not gone, just unreadable this time (permissions, /proc hiccup): no reading, not a zero.
                    return 503, {"error": f"{error.__class__.__name__}: {error}"}
            # Sticky: a process that comes back under the same pid, port or cgroup is a restart, not the same.
            return 410, {"state": GONE, "pid": self.probe.pid, "error": self.gone}

    def health(self) -> dict[str, Any]:
        """GET /healthz: who answers and what it watches."""
        return {"agent": "rtcap", "version": __version__, "host": socket.gethostname(), "watching": self.what,
                "pid": self.probe.pid, "gone": self.gone}


class _Handler(BaseHTTPRequestHandler):
    server: "AgentServer"

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        path = self.path.split("?", 1)[0]
        if path == "/sample":
            status, body = self.server.watch.reading()
        elif path == "/healthz":
            status, body = 200, self.server.watch.health()
        else:
            status, body = 404, {"error": f"no {path}: GET /sample or /healthz"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        pass  # one line per read would fill the target host's logs


class AgentServer(ThreadingHTTPServer):
    """The agent's HTTP server around one Watch."""

    daemon_threads = True

    def __init__(self, watch: Watch, bind: str = "127.0.0.1", port: int = DEFAULT_LISTEN_PORT) -> None:
        self.address_family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        super().__init__((bind, port), _Handler)
        self.watch = watch

    @property
    def url(self) -> str:
        """The address to give the adapter's process.agent_url."""
        host, port = self.server_address[:2]
        return f"http://{f'[{host}]' if ':' in str(host) else host}:{port}"


def watch_for(args: argparse.Namespace) -> Watch:
    """The Watch the command line asks for; ObserveError (or ValueError, psutil.Error) when it cannot be found."""
    if args.cgroup:
        return Watch(CgroupProcsProbe(args.cgroup), f"cgroup {args.cgroup}")
    pid = args.pid if args.pid else listening_pid(args.port)
    what = f"pid {pid}" if args.pid else f"pid {pid} (listening on port {args.port})"
    scope = {"tree": " and its children", "group": " with its process group", "port": " alone"}[args.scope]
    probe = ProcessProbe(pid, "target", include_children=args.scope != "port", group=args.scope == "group")
    return Watch(probe, what + scope)


def add_agent_parser(subparsers: Any) -> argparse.ArgumentParser:
    """`rtcap agent`'s parser, added to the `rtcap` command's subparsers."""
    parser = subparsers.add_parser("agent", help="serve the target's memory, CPU and connections over HTTP, for a "
                                                  "run on another host (the adapter's process.agent_url)",
                                   description="Serve readings of a server's process(es) on this host: GET /sample "
                                               "(memory, CPU, fds, connections, state), GET /healthz.")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--pid", type=number(int, 1), help="watch this process")
    which.add_argument("--port", type=number(int, 1, 65535), help="watch the process listening on this TCP port")
    which.add_argument("--cgroup", help="sum every process of this cgroup directory (workers plus broker)")
    parser.add_argument("--scope", choices=PROCESS_SCOPES, default="tree",
                        help="with --pid or --port, what is summed: tree (the process and its descendants, default), "
                             "group (its process group), port (the process alone)")
    parser.add_argument("--bind", type=bind_host, default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; any other is reachable by anyone who can "
                             "reach this host: the agent has no authentication)")
    parser.add_argument("--listen-port", type=number(int, 0, 65535), default=DEFAULT_LISTEN_PORT,
                        help=f"port to listen on (default {DEFAULT_LISTEN_PORT}; 0 picks a free one)")
    return parser


def agent_command(args: argparse.Namespace) -> int:
    """`rtcap agent`: serve until interrupted; 2 when the process to watch cannot be found or the port is taken."""
    try:
        watch = watch_for(args)
        server = AgentServer(watch, args.bind, args.listen_port)
    except (ObserveError, ValueError, OSError, psutil.Error) as error:
        print(f"rtcap agent: error: {error}", file=sys.stderr)
        return 2
    if args.bind not in ("127.0.0.1", "::1"):
        print(f"rtcap agent: note: listening on {args.bind}, without authentication", file=sys.stderr)
    # One line, flushed: scripts and tests read the address (with --listen-port 0, the port picked) from it.
    print(f"rtcap agent {__version__} serving {server.url} watching {watch.what}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m rtcap.loadtests.run.agent ...`, the same as `rtcap agent ...`."""
    parser = argparse.ArgumentParser(prog="rtcap")
    commands = parser.add_subparsers(dest="command", required=True)
    add_agent_parser(commands)
    args = parser.parse_args(["agent", *(sys.argv[1:] if argv is None else argv)])
    return agent_command(args)


if __name__ == "__main__":
    sys.exit(main())
