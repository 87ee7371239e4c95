"""Refuse bad input to `rtcap` before anything starts: a typo must cost an error line, not a run.

Preflight checks need the parsed options together (`check_server_args`, `check_distribution`,
`preflight_limits` over this machine's limits in loadtests/run/oslimits.py, `prepare_out_dir`) and raise PreflightError, which `rtcap run` prints as one line and exits 2 on. Parse-time
checks of single values are argparse types, in loadtests/values.py.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import ipaddress
import os
import resource
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rtcap.loadtests import options as declared
from rtcap.loadtests.run import oslimits, sizing
from rtcap.loadtests.run.oslimits import FD_MARGIN, connections_per_user
from rtcap.targets import transports as registry

if TYPE_CHECKING:
    from rtcap.loadtests.run.sweep import RunOptions
    from rtcap.targets.adapter import TargetAdapter

class PreflightError(ValueError):
    """The run cannot start as asked; the message is one line naming the option to change."""


def prepare_out_dir(out_dir: Path, name: str) -> Path:
    """Create `out_dir`, prove it takes files and that `name` is free in it; return the run directory.

    Writing a probe is the only honest test: permission bits say nothing about read-only mounts, /proc, or
    root (who passes every permission check).
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise PreflightError(f"--out-dir {out_dir}: is a file, not a directory") from None
    except OSError as error:
        raise PreflightError(f"--out-dir {out_dir}: cannot create it: {error.strerror or error}") from None
    try:
        handle, probe = tempfile.mkstemp(prefix=".rtcap-probe-", dir=out_dir)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise PreflightError(f"--out-dir {out_dir}: cannot write into it: {error.strerror or error}") from None
    run_dir = out_dir / name
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise PreflightError(f"--name {name}: {run_dir} already exists and is not empty; choose another --name")
    return run_dir


def reference_args(command: Sequence[str]) -> list[str] | None:
    """The arguments a start command hands the reference target, or None when it starts another server."""
    command = list(command)
    for i, arg in enumerate(command):
        if arg == "-m" and command[i + 1:i + 2] in (["rtcap.targets.reference"], ["rtcap.targets.reference.__main__"]):
            return command[i + 2:]
        if command[i:i + 2] == ["target", "serve"] and i and (Path(command[i - 1]).name == "rtcap"
                                                               or command[i - 1] == "rtcap.loadtests.cli"):
            return command[i + 2:]
    return None


def _parse_reference(args: list[str]) -> argparse.Namespace:
    """Parse `args` with the reference target's own parser; PreflightError instead of its exit."""
    from rtcap.targets.reference.__main__ import build_arg_parser, config_from_args

    parser = build_arg_parser()

    def refuse(message: str = "", *_: object) -> None:
        raise PreflightError(str(message or "--help is not an option to pass on").strip())

    parser.error = refuse  # type: ignore[method-assign]
    parser.exit = lambda status=0, message=None: refuse(message or "")  # type: ignore[method-assign]
    with contextlib.redirect_stdout(io.StringIO()):  # --help would print the whole help first
        namespace = parser.parse_args(args)
    try:
        config_from_args(namespace)
    except ValueError as error:
        raise PreflightError(str(error)) from None
    return namespace


def check_server_args(adapter: TargetAdapter, server_args: Sequence[str], rate: float | None = None,
                      payload: int | None = None) -> None:
    """Refuse --server-args the server rtcap starts would refuse, before it is started.

    The reference target's options are checked by its own parser (unknown options, bad values, and the
    options rtcap sets itself: --host and --port, --rate and --payload); another server judges its own.
    """
    start = adapter.process.start
    if start is None:
        if server_args:
            raise PreflightError(f"--server-args: target {adapter.name!r} ({adapter.source}) has no process.start, "
                                 "so rtcap starts no server to pass them to")
        return
    command = adapter.process.render_start(port=0, rate=adapter.publish.rate if rate is None else rate,
                                           payload=adapter.publish.payload if payload is None else payload,
                                           channel=adapter.channel)
    given = reference_args(command)
    if given is None:
        return
    try:
        base = _parse_reference(given)
    except PreflightError as error:
        raise PreflightError(f"{adapter.source}: process.start: {error}") from None
    try:
        asked = _parse_reference([*given, *server_args])
    except PreflightError as error:
        raise PreflightError(f"--server-args: {error} (see rtcap target serve --help)") from None
    for option in ("host", "port", "rate", "payload"):
        if getattr(asked, option) != getattr(base, option):
            own = f"; use rtcap run --{option}" if option in ("rate", "payload") else ""
            raise PreflightError(f"--server-args: --{option} is set by rtcap run itself{own}")


def open_files_needed(steps: Sequence[int], transports: Sequence[str], processes: int = 1,
                      starts_target: bool = True) -> int:
    """Descriptors the busiest process of a run needs at its largest step.

    Each load-generating process holds its share of the users' sockets (`processes` 0: none runs here, the
    workers are elsewhere); a target rtcap starts holds the other end of every one of them in one process,
    and inherits rtcap's limit.
    """
    per_user = connections_per_user(transports)
    users = max(steps, default=0)
    generator = -(-users // processes) * per_user if processes > 0 else 0
    return max(generator, users * per_user if starts_target else 0) + FD_MARGIN


def preflight_open_files(steps: Sequence[int], transports: Sequence[str], processes: int = 1,
                         starts_target: bool = True) -> str | None:
    """Make the open-file limit fit the largest step, or refuse the run before it starts.

    Raises the soft limit (RLIMIT_NOFILE) in this process when the hard limit allows it: Locust and the target
    are children and inherit it. Returns a note saying so (None when it already fits); PreflightError with the
    numbers and the fix when even the hard limit is too low.
    """
    need = open_files_needed(steps, transports, processes, starts_target)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or need <= soft:
        return None
    per_user = connections_per_user(transports)
    what = (f"--steps: the largest step, {max(steps):,} users ({per_user} connection{'s' * (per_user > 1)} each), "
            f"needs about {need:,} open files in one process")
    fix = (f"raise the hard limit (ulimit -n {need} as root, LimitNOFILE={need} in a systemd unit, nofile in "
           "/etc/security/limits.conf) or lower --steps")
    if hard != resource.RLIM_INFINITY and need > hard:
        raise PreflightError(f"{what}, but this process may open at most {hard:,} (soft limit {soft:,}, hard limit "
                             f"{hard:,}); {fix}")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    except (ValueError, OSError) as error:
        raise PreflightError(f"{what}, but raising the soft limit from {soft:,} failed ({error}); {fix}") from None
    return f"raised the open-file soft limit from {soft:,} to {need:,} for the largest step, {max(steps):,} users"


def check_distribution(options: RunOptions) -> None:
    """Refuse generator options that contradict each other: local workers or remote ones, and what goes with
    remote ones only."""
    if options.expect_workers and options.processes > 1:
        raise PreflightError("--processes forks local workers and --expect-workers waits for remote ones "
                             "(rtcap worker); give one of them")
    if not options.expect_workers:
        for dest, flag in (("master_bind_host", "--master-bind-host"), ("master_bind_port", "--master-bind-port")):
            if getattr(options, dest) != declared.default(dest):
                raise PreflightError(f"{flag} goes with --expect-workers (--processes forks its workers on "
                                     "loopback itself)")
    elif options.source_ips:
        raise PreflightError("--source-ips: with --expect-workers the workers open the connections; give it to "
                             "each rtcap worker (rtcap worker --source-ips ...)")


def check_held_per_user(options: RunOptions) -> None:
    """--held-per-user K: only for the transports whose listeners can hold many connections, and steps that are
    whole numbers of such listeners (steps count connections)."""
    if options.held_per_user == 1:
        return
    others = [t for t in options.transports if not registry.lookup(t).crowd]
    if others:
        able = ",".join(r.name for r in registry.REGISTRY if r.crowd)
        raise PreflightError(f"--held-per-user: only {able} listeners hold several connections each; not "
                             f"{','.join(others)} (run them separately with --held-per-user 1)")
    uneven = [step for step in options.steps if step % options.held_per_user]
    if uneven:
        raise PreflightError(f"--steps: {uneven[0]:,} connections is not a multiple of --held-per-user "
                             f"{options.held_per_user} (steps count connections; each user holds that many)")


def check_source_ips(addresses: Sequence[str]) -> None:
    """Refuse a --source-ips address this machine cannot send from (binding to it is the only honest test)."""
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.bind((address, 0))
        except OSError as error:
            raise PreflightError(f"--source-ips: cannot open connections from {address} ({error.strerror or error}): "
                                 "it is not an address of this machine (add it, e.g. ip addr add ADDR/32 dev "
                                 "IFACE; all of 127.0.0.0/8 is loopback)") from None


def preflight_limits(options: RunOptions, starts_target: bool) -> str | None:
    """This machine's limits against the run's largest step (loadtests/run/oslimits.py): open files (raising
    the soft limit when allowed; returns a note then), ephemeral ports per source address, the backlog of a
    target rtcap starts, and the open-file limit of a running --target-pid. The generator's share is
    checked where it runs: here, unless --expect-workers puts it on the workers."""
    steps, transports = options.steps, options.transports
    local_generator = not options.expect_workers
    note = preflight_open_files(steps, transports, options.processes if local_generator else 0, starts_target)
    try:
        limits = oslimits.read_host_limits()
        if local_generator:
            oslimits.check_ports(steps, transports, len(options.source_ips), limits)
        if starts_target:
            oslimits.check_backlog(steps, transports, options.spawn_rate, limits)
        if options.host and options.target_pid:
            oslimits.check_target_open_files(options.target_pid, steps, transports)
    except oslimits.LimitRefused as error:
        raise PreflightError(str(error)) from None
    return note


def preflight(runs: Sequence[RunOptions], out_dir: Path, name: str) -> list[str]:
    """Every check of what `runs` (one run, or a scenario's arms) need before the first starts.

    In the order a run would meet them: the target adapter and transports, the options for the server rtcap
    starts, the generator's (local or remote workers, source addresses), this machine's limits, then the run
    directory (last, since it creates --out-dir). Returns notes to
    print; PreflightError names the first problem.
    """
    from rtcap.loadtests.run.sweep import RunError, load_target

    notes = []
    for options in runs:
        try:
            adapter = load_target(options)
        except RunError as error:
            raise PreflightError(str(error)) from None
        starts_target = not options.host and adapter.process.start is not None
        if not options.host:
            check_server_args(adapter, options.server_args, options.rate, options.payload)
        check_distribution(options)
        check_held_per_user(options)
        if options.expect_workers and starts_target and not ipaddress.ip_address(options.master_bind_host).is_loopback:
            raise PreflightError(f"--master-bind-host {options.master_bind_host}: workers on other machines cannot "
                                 "reach the target rtcap starts on loopback; start it where they can and give --host")
        check_source_ips(options.source_ips)
        rate = options.rate if options.rate is not None else adapter.publish.rate
        for note in (preflight_limits(options, starts_target),
                     sizing.sizing_note(options.steps, options.transports, rate,
                                        options.expect_workers or options.processes, options.held_per_user)):
            if note and note not in notes:
                notes.append(note)
    prepare_out_dir(out_dir, name)
    return notes
