"""Several worker processes on one port sharing a broker (`--workers N --broker redis`), and their supervisor.

The supervisor (the process `rtcap target serve` runs) starts a private redis-server for `--broker redis`
(targets/redis_server.py), holds the port with a bound, non-listening SO_REUSEPORT socket (so port 0 resolves
once), starts N workers (`python -m rtcap.targets.reference.workers`, their spec on stdin), and prints the
usual listening line with its own pid once every worker listens: a sampler of that process tree sees the
workers and the broker. Each worker binds its own SO_REUSEPORT socket on the port, so the kernel spreads new
connections over them, and runs the ordinary app under uvicorn with a RedisBroker.

Every child is stopped by the supervisor: on SIGTERM/SIGINT, on any worker's exit (the deployment is then
broken: the others stop too and the supervisor exits 1), and on every error path; redis-server after the
workers. On Linux a child also gets SIGTERM if the supervisor is killed outright.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

from rtcap.targets.redis_server import RedisServer, RedisServerError, parent_death_signal

from .broker import Deployment
from .config import TargetConfig
from .server import GRACEFUL_SHUTDOWN_S, bind_socket, listening_line

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = GRACEFUL_SHUTDOWN_S + 3.0  # uvicorn's graceful shutdown, then SIGKILL
WATCH_INTERVAL_S = 0.2
MAX_SPEC_BYTES = 1 << 20
READY_PREFIX = "ready"


class DeploymentError(RuntimeError):
    """The deployment could not start, or a worker died."""


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM/SIGINT set `stop` (the supervisor then stops its children) instead of killing the supervisor."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in handled}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start_worker(config: TargetConfig, deployment: Deployment, port: int) -> subprocess.Popen[bytes]:
    """One worker process; its spec (config, token included) goes over stdin, never the command line."""
    spec = {"config": dataclasses.asdict(config), "deployment": dataclasses.asdict(deployment), "port": port}
    proc = subprocess.Popen([sys.executable, "-m", "rtcap.targets.reference.workers"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, preexec_fn=parent_death_signal())
    assert proc.stdin is not None
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.write(json.dumps(spec).encode())
    proc.stdin.close()
    return proc


def _wait_ready(workers: list[subprocess.Popen[bytes]], stop: threading.Event) -> bool:
    """Wait for every worker's ready line; False if stopped meanwhile, DeploymentError if one fails."""
    pending = {proc.stdout.fileno(): (index, proc) for index, proc in enumerate(workers) if proc.stdout}
    deadline = time.monotonic() + READY_TIMEOUT_S
    while pending and not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            raise DeploymentError(f"{len(pending)} of {len(workers)} workers not ready within {READY_TIMEOUT_S:g} s")
        ready, _, _ = select.select(list(pending), [], [], min(left, WATCH_INTERVAL_S))
        for fd in ready:
            index, proc = pending.pop(fd)
            line = os.read(fd, 256).decode(errors="replace")
            assert proc.stdout is not None
            proc.stdout.close()  # the worker writes nothing else there
            if not line.startswith(READY_PREFIX):
                code = proc.wait(STOP_TIMEOUT_S)
                raise DeploymentError(f"worker {index} exited with status {code} before it was ready "
                                      "(its errors are above)")
    return not stop.is_set()


def _stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every live worker, wait for all of them together, SIGKILL whoever outlasts STOP_TIMEOUT_S."""
    for proc in workers:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for proc in workers:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def supervise(config: TargetConfig) -> None:
    """Run the deployment until SIGTERM/SIGINT; DeploymentError (or ListenError) if it fails."""
    stop = threading.Event()
    with contextlib.ExitStack() as stack:
        stack.enter_context(_stop_on_signals(stop))
        url = config.broker
        if url == "redis":
            try:
                url = stack.enter_context(RedisServer()).url
            except RedisServerError as exc:
                raise DeploymentError(f"--broker redis: {exc}") from None
        reservation = stack.enter_context(bind_socket(config.host, config.port, reuse_port=True, listen=False))
        port = reservation.getsockname()[1]
        namespace = f"{os.getpid()}-{secrets.token_hex(4)}"  # this deployment's keys, should Redis be shared
        workers: list[subprocess.Popen[bytes]] = []
        stack.callback(_stop_workers, workers)  # runs before redis-server is stopped
        for index in range(config.workers):
            workers.append(_start_worker(config, Deployment(index, config.workers, url, namespace), port))
        if not _wait_ready(workers, stop):
            return
        print(listening_line(config.host, port, os.getpid()), flush=True)
        while not stop.wait(WATCH_INTERVAL_S):
            for index, proc in enumerate(workers):
                if proc.poll() is not None:
                    raise DeploymentError(f"worker {index} (pid {proc.pid}) exited with status {proc.returncode}; "
                                          "stopping the deployment")


def worker_main() -> int:
    """A worker: read the spec from stdin, listen on the port, serve until SIGTERM/SIGINT."""
    from .app import create_app
    from .server import ListenError, raise_fd_limit, run_app

    spec = json.loads(sys.stdin.buffer.read(MAX_SPEC_BYTES))
    config = TargetConfig(**spec["config"])
    deployment = Deployment(**spec["deployment"])
    raise_fd_limit(config.max_connections + 256)
    try:
        sock = bind_socket(config.host, spec["port"], reuse_port=True)
    except ListenError as exc:
        print(f"rtcap reference target: worker {deployment.index}: {exc}", file=sys.stderr)
        return 1

    def announce() -> None:
        sys.stdout.write(f"{READY_PREFIX} {os.getpid()}\n")
        sys.stdout.flush()
        os.dup2(2, 1)  # the supervisor closed its end: anything printed later goes to stderr

    with sock:
        started = run_app(create_app(config, deployment), config, sock, announce)
    return 0 if started else 3


if __name__ == "__main__":
    try:
        sys.exit(worker_main())
    except KeyboardInterrupt:  # a terminal's Ctrl-C before uvicorn's handlers were installed
        sys.exit(130)
