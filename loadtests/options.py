"""Every option of a run, declared once: name, type, default, help, and which process needs it.

A run crosses a process boundary: `rtcap run` parses its command line in the orchestrating process, then
starts Locust, whose users and step shape read the same settings from Locust's own parser (and its web UI's
start form). Everything on both sides is derived from OPTIONS:

- `rtcap run`'s parser (loadtests/cli.py, `add_run_arguments`),
- Locust's parser and web-UI form (loadtests/generator/options.py, `add_locust_arguments`) and the
  `Settings` the users read,
- the argv `rtcap run` hands the generator (`generator_argv`),
- RunOptions' defaults (loadtests/run/sweep.py) and meta.json's "options" (what the run was asked to do).

One default per option, so a plain `locust -f locustfile.py,loadtests/generator/stepload.py` climbs the same
staircase as `rtcap run`. Standard library only: both processes import it, and the orchestrator never
imports Locust.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from rtcap.loadtests import values as v
from rtcap.loadtests.transports import limits
from rtcap.reports import slo
from rtcap.targets import transports as registry


def transport_list(text: str) -> list[str]:
    """--transports: a comma list of names from targets/transports.py; any other name is refused."""
    try:
        return registry.checked(name.strip() for name in text.split(",") if name.strip())
    except registry.UnknownTransport as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _server_args(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"cannot split {text!r}: {error}") from None


def _steps(text: str) -> list[int]:
    from rtcap.loadtests.generator.staircase import parse_steps

    try:
        return parse_steps(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _path(text: str) -> Path:
    return Path(text)


@dataclass(frozen=True, kw_only=True)
class Option:
    """One option of a run."""

    dest: str
    """Its attribute on RunOptions and its key in meta.json's "options"."""
    default: Any
    help: str
    run: str | None = None
    """Its flag in `rtcap run` (None: not an option of `rtcap run`)."""
    locust: str | None = None
    """Its flag in the Locust generator's parser (None: only the orchestrating process needs it). Its
    attribute on Settings is this flag's argparse dest (--step-hold: step_hold)."""
    type: Callable[[str], Any] | None = None
    """Parses and checks a value (both parsers); None for flags."""
    action: str | None = None
    """argparse action: store_true, store_false (a --no-... flag), append."""
    metavar: str | None = None
    shown: str | None = None
    """The default as `--help` shows it, where str(default) would not say it well; "" shows none."""
    web_ui: bool = True
    """Appears in the Locust web UI's start form."""
    forward: bool = True
    """`rtcap run` hands its value to the generator (False: handled on its own, or internal)."""

    @property
    def setting(self) -> str | None:
        """Its attribute on the generator's Settings: the Locust flag's name (--step-hold: step_hold), or for a
        --no-... flag the positive name (conditional_get)."""
        if self.locust is None:
            return None
        return self.dest if self.action == "store_false" else self.locust.lstrip("-").replace("-", "_")

    def setting_value(self, value: Any) -> Any:
        """A parsed Locust value as the users read it: the web UI's form hands strings to options whose default
        is None, so those are parsed here ("" is None)."""
        if isinstance(value, str) and self.type is not None and self.type not in (_steps, _path) \
                and self.default is None:
            return self.type(value) if value.strip() else None
        return value

    def help_text(self) -> str:
        """The help line, with the default."""
        shown = self.shown if self.shown is not None else ("" if self.default in (None, "", False) else
                                                          f"{self.default:g}" if isinstance(self.default, float)
                                                          else str(self.default))
        return f"{self.help} (default {shown})" if shown else self.help

    def to_argv(self, value: Any) -> list[str]:
        """The generator's arguments that give it `value`."""
        assert self.locust is not None
        if self.action == "store_true":
            return [self.locust] if value else []
        if self.action == "store_false":
            return [] if value else [self.locust]
        if value is None:
            return []
        if isinstance(value, (list, tuple)):
            return [self.locust, ",".join(map(str, value))]
        return [self.locust, str(value)]


def _o(**kwargs: Any) -> Option:
    return Option(**kwargs)


OPTIONS: tuple[Option, ...] = (
    # The staircase.
    _o(dest="steps", run="--steps", locust="--steps", type=_steps, default=[100, 200, 300, 400, 500, 600],
       shown="100,200,300,400,500,600", help="users per step, '100,200' or 'start:stop:step'"),
    _o(dest="hold", run="--hold", locust="--step-hold", type=v.number(float, 0, v.MAX_SECONDS, above=True),
       default=15.0, help="seconds each step holds after its users are running"),
    _o(dest="settle", run="--settle", locust="--step-settle", type=v.number(float, 0, v.MAX_SECONDS), default=2.0,
       shown="2, or a third of --hold if that is less", help="least seconds after a step's users run before measuring"),
    _o(dest="settle_max", run="--settle-max", locust="--step-settle-max", type=v.number(float, 0, v.MAX_SECONDS),
       default=30.0, help="then wait up to this many seconds for the target's memory to settle (0: fixed --settle; "
                          "needs the target's memory samples, which rtcap run records)"),
    _o(dest="spawn_rate", run="--spawn-rate", locust="--step-spawn-rate",
       type=v.number(float, 0, v.MAX_SPAWN_RATE, above=True), default=100.0,
       help="users started per second between steps"),
    _o(dest="ramp_timeout", run="--ramp-timeout", locust="--step-ramp-timeout",
       type=v.number(float, 0, v.MAX_SECONDS, above=True), default=60.0,
       help="give up waiting for a step's users after this many seconds"),
    # What the users do.
    _o(dest="transports", run="--transports", type=transport_list, default=list(registry.RUN_DEFAULT),
       shown=",".join(registry.RUN_DEFAULT),
       help=f"comma list from {','.join(registry.NAMES)} (state = full-state polling, longpoll = long polling, "
            "signal = WebSocket notice then REST fetch, rpc/rest = request/response over WebSocket/HTTP, presence = "
            "typing indicators in rooms)"),
    _o(dest="target", run="--target", locust="--target", type=_path, default=None, forward=False,
       help="target adapter file (TOML) describing your server; default: the bundled reference target"),
    _o(dest="channel", run="--channel", locust="--channel", default="",
       help="channel to subscribe to (default: the adapter's, live)"),
    _o(dest="poll_interval", run="--poll-interval", locust="--poll-interval",
       type=v.number(float, 0, v.MAX_INTERVAL_S, above=True), default=1.0, help="seconds between polls of one viewer"),
    _o(dest="conditional_get", run="--no-conditional-get", locust="--no-conditional-get", action="store_false",
       default=True, help="polling viewers send no If-None-Match / If-Modified-Since (every poll gets a full 200)"),
    _o(dest="chat_room", locust="--chat-room", default="",
       help="room the WebSocket chatters join (default: the adapter's, lobby)"),
    _o(dest="chat_rate", run="--chat-rate", locust="--chat-rate", type=v.number(float, 0, v.MAX_USER_RATE),
       default=0.2, help="chat messages per second per chatter (0: listen only)"),
    _o(dest="chat_size", locust="--chat-size", type=v.number(int, 0, v.MAX_PAYLOAD_BYTES), default=64,
       help="bytes of text in each chat message"),
    _o(dest="request_rate", run="--request-rate", locust="--request-rate", type=v.number(float, 0, v.MAX_USER_RATE),
       default=1.0, help="rpc and rest: requests per second per user (0: closed loop, the next once the last is "
                         "answered)"),
    _o(dest="request_timeout", locust="--request-timeout", type=v.number(float, 0, v.MAX_SECONDS, above=True),
       default=5.0, help="seconds after which an unanswered RPC request counts as an error"),
    _o(dest="typing_rate", run="--typing-rate", locust="--typing-rate",
       type=v.number(float, 0, v.MAX_USER_RATE, above=True), default=1.0,
       help="presence: typing indicators per second per user"),
    _o(dest="room_size", run="--room-size", locust="--room-size", type=v.number(int, 0, v.MAX_ROOM_SIZE), default=10,
       help="presence: users per room (rooms ROOM-0, ROOM-1...; 0: one room)"),
    _o(dest="held_per_user", run="--held-per-user", locust="--held-per-user",
       type=v.number(int, 1, v.MAX_HELD_PER_USER), default=1,
       help="connections each ws, sse or ndjson listener holds, read from the event loop instead of a greenlet each "
            "(cheaper per connection; steps stay in connections and must be multiples of it); 1: one per user"),
    _o(dest="reconnect_max", locust="--reconnect-max", type=v.number(float, 0, v.MAX_SECONDS, above=True),
       default=10.0, help="ceiling of the reconnect backoff, seconds"),
    _o(dest="read_timeout", locust="--read-timeout", type=v.number(float, 0, v.MAX_SECONDS, above=True),
       default=60.0, help="seconds of silence before a stream counts as dead"),
    # What a client accepts from the server (loadtests/transports/limits.py).
    _o(dest="max_message_bytes", run="--max-message-bytes", locust="--max-message-bytes",
       type=v.number(int, 1024, 1 << 30), default=limits.WS_MESSAGE_BYTES, metavar="BYTES", shown="1 MiB",
       help="largest SSE event or line and WebSocket message a client accepts; a larger one is an error against "
            "the target and closes the connection"),
    _o(dest="max_body_bytes", run="--max-body-bytes", locust="--max-body-bytes", type=v.number(int, 1024, 1 << 34),
       default=limits.HTTP_BODY_BYTES, metavar="BYTES", shown="8 MiB",
       help="largest HTTP response body a poll or fetch accepts"),
    _o(dest="head_timeout", run="--head-timeout", locust="--head-timeout", type=v.number(float, 0, 3600, above=True),
       default=limits.HEAD_TIMEOUT_S, metavar="S",
       help="seconds a poll, fetch or connection may wait for its response head (long polls: up to --read-timeout)"),
    # The target.
    _o(dest="rate", run="--rate", type=v.number(float, 0, v.MAX_EVENT_RATE, above=True), default=None,
       help="events per second published during the run (default: the adapter's publish.rate, 1)"),
    _o(dest="payload", run="--payload", type=v.number(int, 0, v.MAX_PAYLOAD_BYTES), default=None,
       help="payload bytes per event (default: the adapter's publish.payload, 64)"),
    _o(dest="server_args", run="--server-args", type=_server_args, default=[], metavar="ARGS", shown="",
       help="extra options for the server rtcap starts, one quoted string: --server-args '--cache-ttl 5 "
            "--state-bytes 8192' (see rtcap target serve --help)"),
    _o(dest="host", run="--host", type=v.http_url, default=None,
       help="measure an already running server at this base URL instead of starting one"),
    _o(dest="target_pid", run="--target-pid", locust="--target-pid", type=v.number(int, 1, v.MAX_PID), default=None,
       forward=False, help="pid of the server process to sample (rtcap run: with --host; Locust: for the web UI's "
                           "Capacity tab)"),
    # Judging.
    _o(dest="slo_p99_ms", run="--slo-p99-ms", type=v.number(float, 0, v.MAX_MS, above=True), default=1000.0,
       shown="1000 ms", help="delivery p99 that counts as meeting the SLO"),
    _o(dest="slo_error_rate", run="--slo-error-rate", type=v.number(float, 0, 1), default=0.01,
       help="error rate (a fraction from 0 to 1) that counts as meeting the SLO"),
    _o(dest="slo_poll_slack_ms", run="--slo-poll-slack", type=v.number(float, 0, v.MAX_MS), default=slo.POLL_SLACK_MS,
       metavar="MS", shown=f"{slo.POLL_SLACK_MS:g} ms",
       help="polled transports (poll, state) are held to staleness p99 <= poll interval + this: a poll's staleness "
            "is spread over its interval, whatever the server"),
    _o(dest="generator_lag_limit_ms", run="--generator-lag-limit-ms", type=v.number(float, 0, v.MAX_MS, above=True),
       default=100.0, help="a step whose load generator woke timers later than this (p99) is not counted"),
    _o(dest="generator_cpu_limit", default=90.0,
       help="a step whose load generator used more than this percentage of a core is flagged saturated"),
    _o(dest="processes", run="--processes", type=v.number(int, 1, v.MAX_PROCESSES), default=1,
       help="load-generating processes; above 1, Locust runs a master plus this many workers"),
    _o(dest="expect_workers", run="--expect-workers", type=v.number(int, 1, v.MAX_WORKERS), default=None,
       help="run only the Locust master and wait for this many workers (`rtcap worker --master HOST:PORT`, on "
            "this or other machines) instead of forking local ones; steps count users across all of them"),
    _o(dest="master_bind_host", run="--master-bind-host", type=v.bind_host, default="127.0.0.1", metavar="ADDR",
       help="with --expect-workers: the address the master listens on for workers (another machine's workers "
            "need a non-loopback one, given explicitly)"),
    _o(dest="master_bind_port", run="--master-bind-port", type=v.number(int, 1, 65_535), default=5557,
       metavar="PORT", help="with --expect-workers: the port the master listens on for workers"),
    _o(dest="on_worker_loss", run="--on-worker-loss", locust="--on-worker-loss", type=v.choice("stop", "continue"),
       default="stop", metavar="stop|continue",
       help="a worker that disappears mid-run voids the step it held users in; stop the run there (exit 3) or "
            "continue with the workers left"),
    _o(dest="source_ips", run="--source-ips", locust="--source-ips", type=v.source_addresses, default=[],
       metavar="ADDRS", shown="", web_ui=False,
       help="local addresses to open connections from, round robin: '127.0.0.2-127.0.0.9' or a comma list (IPv6 "
            "too); each gives another ~28k ports per destination (Linux: all of 127.0.0.0/8 is loopback)"),
    _o(dest="thresholds", run="--threshold", locust="--threshold", action="append", default=[], metavar="EXPR",
       web_ui=False, forward=False,
       help="pass/fail gate, repeatable: 'sse.delivery.p99<250ms', 'ws.errors<0.1%%', 'sse.mem_per_conn<32KiB', "
            "'poll.rps>=500' (also RTCAP_THRESHOLDS, rtcap.toml, [tool.rtcap] in pyproject.toml); exit 1 when one "
            "is not met"),
    _o(dest="abort_early", run="--abort-early", locust="--abort-early", action="store_true", default=False,
       forward=False,
       help="stop the sweep as soon as a threshold can no longer be met (a finished step's latency or error rate, or "
            "a count such as lost, over its upper bound); what was measured is kept"),
    # Where it goes.
    _o(dest="name", run="--name", type=v.run_name, default=None,
       help="run name: one directory under --out-dir, no '/' or leading '.' (default: run-YYYYmmdd-HHMMSS)"),
    _o(dest="out_dir", run="--out-dir", type=_path, default=Path("runs"), shown="./runs",
       help="where run directories go"),
    _o(dest="report", run="--no-report", action="store_false", default=True, help="write the run directory only"),
    _o(dest="sample_interval", default=0.5, help="seconds between two samples of the target's memory and CPU"),
    # Internal to the generator: rtcap run passes them per transport.
    _o(dest="settle_samples", locust="--step-settle-samples", default="", web_ui=False, forward=False,
       help="step shape: JSON-lines file of the target's memory samples ({t, rss_bytes}), appended while the test "
            "runs"),
    _o(dest="record", locust="--rtcap-record", default="", web_ui=False, forward=False,
       help="directory to write the per-second timeline and step windows to"),
)
"""Every option, in the order `--help` lists them."""
BY_DEST: Mapping[str, Option] = MappingProxyType({o.dest: o for o in OPTIONS})
RUN: tuple[Option, ...] = tuple(o for o in OPTIONS if o.run)
LOCUST: tuple[Option, ...] = tuple(o for o in OPTIONS if o.locust)


def default(dest: str) -> Any:
    """The one default of option `dest` (a fresh copy of a list)."""
    value = BY_DEST[dest].default
    return list(value) if isinstance(value, list) else value


def run_options_class() -> type:
    """The RunOptions dataclass: `name` (required), then a field for every option the orchestrating process needs (those
    of `rtcap run` and those only it reads), typed after its default, defaulting to it."""
    fields = [("name", str)]
    for option in OPTIONS:
        if (option.run or option.locust is None) and option.dest != "name":
            kind = Any if option.default is None else type(option.default)
            fields.append((option.dest, kind, field(default_factory=lambda d=option.dest: default(d))))
    made = make_dataclass("RunOptions", fields, kw_only=True)
    made.__module__ = "rtcap.loadtests.run.sweep"
    return made


def add_run_arguments(parser: argparse.ArgumentParser, skip: Iterable[str] = (),
                      only: Iterable[str] | None = None) -> None:
    """`rtcap run`'s options (`only` these, for another command sharing some). Defaults are left None (except
    flags), so the caller can tell "not given" from the default where a preset (--quick) or a scenario
    supplies its own."""
    skip = set(skip)
    only = None if only is None else set(only)
    for option in RUN:
        if option.dest in skip or (only is not None and option.dest not in only):
            continue
        kwargs: dict[str, Any] = {"dest": option.dest, "help": option.help_text()}
        if option.action is not None:
            kwargs["action"] = option.action
        if option.action in ("store_true", "store_false"):
            kwargs["default"] = option.default
        else:
            kwargs["default"] = None
        if option.type is not None:
            kwargs["type"] = option.type
        if option.metavar:
            kwargs["metavar"] = option.metavar
        parser.add_argument(option.run, **kwargs)


def add_locust_arguments(parser: Any) -> None:
    """The generator's options on Locust's parser (env vars RTCAP_<SETTING>; the web UI's form shows them)."""
    for option in LOCUST:
        kwargs: dict[str, Any] = {"help": "rtcap: " + option.help_text(), "env_var": f"RTCAP_{option.setting.upper()}",
                                  "dest": option.setting}
        if option.action is not None:
            kwargs["action"] = option.action
        if option.action == "append":
            kwargs["default"] = None
        elif isinstance(option.default, list):
            kwargs["default"] = ",".join(map(str, option.default))
        elif isinstance(option.default, Path):
            kwargs["default"] = str(option.default)
        else:
            kwargs["default"] = option.default
        if option.type is not None and option.type not in (_steps, _path):
            # A list reaches the users as its text (as the web UI's form gives it), checked here all the same.
            kwargs["type"] = _checked_text(option.type) if isinstance(option.default, list) else option.type
        if option.metavar:
            kwargs["metavar"] = option.metavar
        if not option.web_ui:
            kwargs["include_in_web_ui"] = False
        parser.add_argument(option.locust, **kwargs)


def _checked_text(parse: Callable[[str], Any]) -> Callable[[str], str]:
    """An argparse type that refuses what `parse` refuses and keeps the text."""
    def check(text: str) -> str:
        parse(text)
        return text

    check.__name__ = getattr(parse, "__name__", "value")  # argparse names the type in its error line
    return check


def generator_argv(values: Mapping[str, Any]) -> list[str]:
    """The Locust arguments that give the generator every forwarded option's value from `values` (RunOptions
    as a mapping): all of them, defaults too, so the generator never falls back on a default of its own."""
    argv: list[str] = []
    for option in LOCUST:
        if option.forward and option.run:
            value = values[option.dest]
            argv += option.to_argv(str(value) if isinstance(value, Path) else value)
    return argv
