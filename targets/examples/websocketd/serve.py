"""Run websocketd (a WebSocket server rtcap did not write) in the foreground on a loopback port.

    python -m rtcap.targets.examples.websocketd.serve --port 0 --rate 2

starts `websocketd --port=P --address=127.0.0.1 PYTHON -I -S ticker.py --rate R` as a child process,
waits until it accepts connections, and prints (flushed):

    websocketd example listening on http://127.0.0.1:PORT (pid WEBSOCKETD_PID)

Every WebSocket connection (any path, e.g. ws://127.0.0.1:PORT/) gets its own ticker.py process whose
stdout lines are the messages. SIGTERM or SIGINT is passed on to websocketd; this script exits when it
exits. Exit status 69 means websocketd is not installed (targets/examples/install.sh installs it).
Standard library only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
from pathlib import Path

from rtcap.targets.examples.launcher import HOST, Launcher, Missing, missing

HERE = Path(__file__).resolve().parent
TICKER = HERE / "ticker.py"
LABEL = "websocketd example"
INSTALL_HINT = "install the Debian package websocketd (bash targets/examples/install.sh)"


def find_websocketd(explicit: str | None = None) -> str:
    """Path of the websocketd binary."""
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise Missing(f"websocketd binary {explicit} is not executable")
        return explicit
    found = shutil.which("websocketd") or next(
        (p for p in ("/usr/bin/websocketd", "/usr/local/bin/websocketd") if os.access(p, os.X_OK)), None
    )
    if not found:
        raise Missing(f"websocketd not found: {INSTALL_HINT}")
    return found


def build_command(websocketd: str, port: int, rate: float, payload: int, python: str, loglevel: str,
                  maxforks: int) -> list[str]:
    """The websocketd command line. The ticker gets its settings as arguments: websocketd passes a
    cleaned environment (only PATH and LD_LIBRARY_PATH, plus CGI-style variables) to its children."""
    command = [websocketd, f"--port={port}", f"--address={HOST}", f"--loglevel={loglevel}"]
    if maxforks:
        command.append(f"--maxforks={maxforks}")
    # -I -S: no site-packages, no PYTHON* variables: the smallest Python process for each connection.
    return [*command, python, "-I", "-S", str(TICKER), f"--rate={rate:g}", f"--payload={payload}"]


def listening_pids(port: int) -> set[int]:
    """Pids with a TCP socket listening on 127.0.0.1:port (Linux /proc, no extra packages)."""
    inodes: set[str] = set()
    want = f"0100007F:{port:04X}"
    try:
        with open("/proc/net/tcp") as table:
            for row in table.readlines()[1:]:
                fields = row.split()
                if fields[1] == want and fields[3] == "0A":  # 0A = LISTEN
                    inodes.add(fields[9])
    except OSError:
        return set()
    pids: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    pids.add(int(entry.name))
                    break
        except OSError:
            continue
    return pids


def accepts(port: int) -> bool:
    """True when a TCP connection to the port succeeds."""
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


def ready(pid: int, port: int) -> bool:
    """websocketd serves once it accepts and the listening socket is its own (not another program's)."""
    return accepts(port) and pid in listening_pids(port)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run websocketd + ticker.py on 127.0.0.1 for rtcap (README.md).")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 picks a free one (default)")
    parser.add_argument("--rate", type=float, default=2.0, help="ticks per second sent on every connection (2)")
    parser.add_argument("--payload", type=int, default=0, help="length of the pad string in each message (0)")
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs ticker.py (this one)")
    parser.add_argument("--websocketd", help="websocketd binary (default: found on PATH)")
    parser.add_argument("--loglevel", default="error",
                        help="websocketd --loglevel: debug, trace, access, info, error, fatal (error)")
    parser.add_argument("--maxforks", type=int, default=0, help="websocketd --maxforks, 0 = unlimited (0)")
    parser.add_argument("--start-timeout", type=float, default=15.0, help="seconds to wait for websocketd (15)")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error("--port must be 0-65535")
    if not 0 < args.rate <= 1000:
        parser.error("--rate must be in (0, 1000]")
    if not 0 <= args.payload <= 1_000_000:
        parser.error("--payload must be 0-1000000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        websocketd = find_websocketd(args.websocketd)
    except Missing as error:
        return missing(LABEL, error)

    launcher = Launcher(LABEL, "websocketd")

    def command(port: int) -> list[str]:
        return build_command(websocketd, port, args.rate, args.payload, args.python, args.loglevel, args.maxforks)

    return launcher.run(command, ready, port=args.port, start_timeout=args.start_timeout)


if __name__ == "__main__":
    sys.exit(main())
