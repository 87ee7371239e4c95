"""`rtcap worker`: Locust worker processes on this machine for the master `rtcap run --expect-workers N` runs.

Each is `python -m locust -f <rtcap's user catalog> --worker --master-host H --master-port P` (what plain
`locust -f locustfile.py --worker --master-host H` does too), in its own session, so that a terminal's Ctrl-C
reaches this process alone and it stops them: SIGINT first (a Locust worker then tells the master it quits and
ships its last rows), SIGKILL to the group after STOP_GRACE_S.

A sweep runs one Locust master per transport and a master's end makes its workers exit: a worker that ended
normally (exit 0 or 1) is started again for the next master, unless --once. A worker that failed (any other
exit, a signal) is reported and not restarted; one that finds no master for Locust's ~5 minutes of retries
after it served a test ends quietly (the sweep is over). `rtcap worker` returns once none is left: 0, or 3 when
a worker failed (never connected, crashed, was killed); 130/143 when stopped by SIGINT/SIGTERM.

The options a test runs with come from the master with every spawn; --source-ips is this machine's own.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from rtcap.loadtests import options as declared
from rtcap.loadtests import values as v
from rtcap.loadtests.run import interrupt

POLL_S = 0.5
"""How often the workers' processes are looked at."""
STOP_GRACE_S = 10.0
"""How long a worker may take to quit cleanly once asked."""
MAX_STARTS = 1_000
"""Most starts of one worker (a sweep runs one master per transport; this bounds a loop of instant exits)."""
NO_MASTER_EXIT = 255
"""A Locust worker that found no master within its retries exits -1."""


def master_address(text: str) -> tuple[str, int]:
    """An argparse type: HOST[:PORT] or [IPv6]:PORT of the master (port: rtcap run's --master-bind-port)."""
    host, port = text, str(declared.default("master_bind_port"))
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else port
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not host:
        raise argparse.ArgumentTypeError(f"expected HOST[:PORT] such as 10.0.0.5:5557, got {text!r}")
    return host, int(v.number(int, 1, 65_535)(port))


def add_worker_parser(subparsers: Any) -> argparse.ArgumentParser:
    """`rtcap worker`'s parser, added to the `rtcap` command's subparsers."""
    parser = subparsers.add_parser("worker", help="run Locust workers here for a master started by rtcap run "
                                                  "--expect-workers (on this or another machine)")
    parser.add_argument("--master", required=True, type=master_address, metavar="HOST[:PORT]",
                        help=f"where rtcap run --expect-workers listens (port default "
                             f"{declared.default('master_bind_port')})")
    parser.add_argument("--processes", type=v.number(int, 1, v.MAX_PROCESSES), default=1,
                        help="Locust worker processes to run here, about one per core (default 1)")
    parser.add_argument("--once", action="store_true",
                        help="end after the first test instead of serving the next transport's master")
    declared.add_run_arguments(parser, only={"source_ips"})
    return parser


def worker_argv(master: tuple[str, int], source_ips: list[str]) -> list[str]:
    """The command line of one Locust worker process."""
    from rtcap.loadtests.run.sweep import GENERATOR_DIR

    command = [sys.executable, "-m", "locust", "-f", str(GENERATOR_DIR / "catalog.py"), "--worker",
               "--master-host", master[0], "--master-port", str(master[1])]
    return command + (declared.BY_DEST["source_ips"].to_argv(source_ips) if source_ips else [])


@dataclass
class Slot:
    """One worker process and its history."""

    number: int
    process: subprocess.Popen | None = None
    starts: int = 0
    served: bool = False
    """It ended normally at least once: it took part in a test."""
    failures: list[str] = field(default_factory=list)


def _start(slot: Slot, argv: list[str], say: Any) -> None:
    # Its own session: Ctrl-C in a terminal reaches rtcap worker, which stops the worker itself.
    slot.process = subprocess.Popen(argv, start_new_session=True, env={**os.environ, "RTCAP_GATE": "off"})
    slot.starts += 1
    interrupt.register(slot.process.pid)
    say(f"rtcap worker: worker {slot.number} started (pid {slot.process.pid})")


def _ended(slot: Slot, code: int, once: bool, say: Any) -> bool:
    """Judge a worker that exited; True when it should be started again."""
    pid = slot.process.pid if slot.process else None
    interrupt.unregister(pid or 0)
    slot.process = None
    if code in (0, 1):
        slot.served = True
        return not once and slot.starts < MAX_STARTS
    if code == NO_MASTER_EXIT and slot.served:
        say(f"rtcap worker: worker {slot.number} found no master any more; done")
        return False
    why = (f"killed by {signal.Signals(-code).name}" if code < 0 else
           "found no master (check --master and the master's --master-bind-host)" if code == NO_MASTER_EXIT
           else f"exited {code}")
    slot.failures.append(why)
    say(f"rtcap worker: worker {slot.number} (pid {pid}) {why}; not restarted")
    return False


def _stop(slots: list[Slot]) -> None:
    """Ask every running worker to quit, then kill what is left of their sessions."""
    running = [slot.process for slot in slots if slot.process is not None]
    for process in running:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + STOP_GRACE_S
    for process in running:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        process.wait()
        interrupt.unregister(process.pid)


def serve(argv: list[str], processes: int, once: bool = False, say: Any = print) -> int:
    """Run `processes` workers with `argv` until none is left; the exit code (see the module's docstring)."""
    slots = [Slot(number) for number in range(1, processes + 1)]
    try:
        with interrupt.handled():
            for slot in slots:
                _start(slot, argv, say)
            while any(slot.process is not None for slot in slots):
                time.sleep(POLL_S)
                for slot in slots:
                    code = slot.process.poll() if slot.process is not None else None
                    if code is not None and _ended(slot, code, once, say):
                        _start(slot, argv, say)
    except interrupt.Interrupted as stop:
        say(f"rtcap worker: {stop}; stopping the workers")
        return stop.exit_code
    finally:
        _stop(slots)
    return 3 if any(slot.failures for slot in slots) else 0


def worker_command(args: argparse.Namespace) -> int:
    """`rtcap worker`."""
    from rtcap.loadtests.run.validate import PreflightError, check_source_ips

    source_ips = args.source_ips or []
    try:
        check_source_ips(source_ips)
    except PreflightError as error:
        print(f"rtcap worker: error: {error}", file=sys.stderr)
        return 2
    host, port = args.master
    print(f"rtcap worker: {args.processes} worker(s) for the master at {host}:{port}", flush=True)
    return serve(worker_argv(args.master, source_ips), args.processes, args.once,
                 say=lambda line: print(line, flush=True))


def main(argv: list[str] | None = None) -> int:
    """`python -m rtcap.loadtests.run.worker ...`: the same as `rtcap worker ...`."""
    parser = argparse.ArgumentParser(prog="rtcap")
    add_worker_parser(parser.add_subparsers(dest="command", required=True))
    return worker_command(parser.parse_args(["worker", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())
