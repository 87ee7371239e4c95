"""Run websocketd (a WebSocket server rtcap did not write) in the foreground on a loopback port.

    python targets/examples/websocketd/serve.py --port 0 --rate 2

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
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TICKER = HERE / "ticker.py"
HOST = "127.0.0.1"
EXIT_MISSING = 69  # sysexits EX_UNAVAILABLE
INSTALL_HINT = "install the Debian package websocketd (bash targets/examples/install.sh)"

try:
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # looked up before any fork
except (OSError, AttributeError):  # not Linux
    _PRCTL = None


class Missing(RuntimeError):
    """A program the example needs is not installed."""


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


def free_port() -> int:
    """A loopback port that was free a moment ago (websocketd treats --port=0 as port 80)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    # In the child before exec: if this launcher is killed outright, the kernel sends websocketd SIGTERM.
    if _PRCTL is not None:
        _PRCTL(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG


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


class Websocketd:
    """One websocketd process."""

    def __init__(self, command: list[str], port: int) -> None:
        self.port = port
        self.address_in_use = False
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # our own signal forwarding decides what websocketd gets
            preexec_fn=_die_with_parent,
        )
        self._pump = threading.Thread(target=self._copy_stderr, daemon=True)
        self._pump.start()

    def _copy_stderr(self) -> None:
        # websocketd logs to stderr; pass it on, and notice a lost race for the port.
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            line = raw.decode(errors="replace")
            if "address already in use" in line.lower():
                self.address_in_use = True
            sys.stderr.write(line)
            sys.stderr.flush()

    def wait_ready(self, timeout: float) -> bool:
        """Wait until websocketd itself listens on its port; False if it exited."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if accepts(self.port) and self.process.pid in listening_pids(self.port):
                return True
            time.sleep(0.02)
        return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Signal websocketd and wait for it."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._pump.join(timeout=2)
        return code


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
        print(f"websocketd example: {error}", file=sys.stderr, flush=True)
        return EXIT_MISSING

    stop_signal: list[int] = []
    server: list[Websocketd] = []

    def forward(signum: int, _frame: object) -> None:
        stop_signal.append(signum)
        if server and server[0].process.poll() is None:
            server[0].process.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)

    attempts = 1 if args.port else 3
    for attempt in range(attempts):
        port = args.port or free_port()
        command = build_command(websocketd, port, args.rate, args.payload, args.python, args.loglevel,
                                args.maxforks)
        server[:] = [Websocketd(command, port)]
        if stop_signal:
            server[0].stop()
            return 0
        if server[0].wait_ready(args.start_timeout):
            break
        code = server[0].stop()
        if stop_signal:
            return 0
        if not (server[0].address_in_use and attempt + 1 < attempts):
            print(f"websocketd example: websocketd did not start (exit status {code})", file=sys.stderr, flush=True)
            return code if code > 0 else 1
    proc = server[0]
    print(f"websocketd example listening on http://{HOST}:{port} (pid {proc.process.pid})", flush=True)
    code = proc.process.wait()
    proc.stop()
    if code == -signal.SIGTERM and stop_signal:
        return 0  # websocketd does not catch SIGTERM: dying of the one we sent is a clean stop
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
