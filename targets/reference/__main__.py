"""Command line of the reference target: `python -m rtcap.targets.reference --port 0`."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable

from .access import normalise_origin
from .broker import broker_kind
from .config import LOG_LEVELS, MAX_CACHE_TTL_S, MAX_DELAY_MS, MAX_WORKERS, TargetConfig, valid_name, workers_problem
from .metrics import STREAM_TRANSPORTS

TOKEN_ENV = "RTCAP_PUBLISH_TOKEN"

_DEFAULTS = TargetConfig()


def _number(kind: type, minimum: float, maximum: float | None = None, *, above: bool = False) -> Callable[[str], float]:
    """An argparse type parsing `kind` within bounds, with a readable error message."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            expected = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if math.isnan(value) or value < minimum or (above and value == minimum):
            raise argparse.ArgumentTypeError(f"must be {'>' if above else '>='} {minimum}, got {text}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be <= {maximum}, got {text}")
        return value

    return parse


def _channel(text: str) -> str:
    if not valid_name(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid channel name (1-128 of A-Z a-z 0-9 _ . : ~ @ + -)")
    return text


def _broker(text: str) -> str:
    try:
        broker_kind(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _origin(text: str) -> str:
    try:
        return normalise_origin(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every reference-target option to `parser` (also used by the rtcap CLI)."""
    d = _DEFAULTS
    parser.add_argument(
        "--host",
        default=d.host,
        help=f"interface to bind (default {d.host}, loopback only); any other address needs --publish-token",
    )
    parser.add_argument(
        "--port", type=_number(int, 0, 65535), default=d.port, help=f"TCP port, 0 picks a free one (default {d.port})"
    )
    parser.add_argument(
        "--rate",
        type=_number(float, 0),
        default=d.rate,
        help=f"ticker events per second per channel, 0 disables (default {d.rate})",
    )
    parser.add_argument(
        "--payload",
        type=_number(int, 0),
        default=d.payload,
        help=f"padding bytes in each ticker event (default {d.payload})",
    )
    parser.add_argument(
        "--channel",
        dest="channels",
        action="append",
        type=_channel,
        metavar="NAME",
        help=f"ticker channel, repeatable (default {d.channels[0]})",
    )
    parser.add_argument(
        "--buffer",
        type=_number(int, 1),
        default=d.buffer,
        help=f"events kept per channel for replay (default {d.buffer})",
    )
    parser.add_argument(
        "--state-bytes",
        type=_number(int, 0),
        default=d.state_bytes,
        help="bytes of unchanging page state GET /state sends besides the buffered events, like a live-scores "
        f"page re-sent whole (default {d.state_bytes})",
    )
    parser.add_argument(
        "--state-validators",
        action="store_true",
        help="GET /state sends ETag and Last-Modified and answers 304 while the state is unchanged, for every "
        "request (as ?conditional=1 does for one); off by default: the whole state every time",
    )
    parser.add_argument(
        "--cache-ttl",
        type=_number(float, 0, MAX_CACHE_TTL_S),
        default=d.cache_ttl,
        metavar="S",
        help="reuse each short-poll (/poll without wait) and /state answer for S seconds per (endpoint, channel, "
        "since), like a CDN: answers carry X-Cache: HIT|MISS and Age, and /metrics counts handler runs "
        f"(rtcap_handler_runs_total) against cache hits (rtcap_cache_hits_total); 0 disables (default {d.cache_ttl:g})",
    )
    parser.add_argument(
        "--heartbeat",
        type=_number(float, 0),
        default=d.heartbeat,
        help=f"SSE heartbeat interval in seconds, 0 disables (default {d.heartbeat})",
    )
    parser.add_argument(
        "--retry-ms",
        type=_number(int, 0),
        default=d.retry_ms,
        help=f"SSE reconnection delay advertised to clients (default {d.retry_ms})",
    )
    parser.add_argument(
        "--max-connections",
        type=_number(int, 1),
        default=d.max_connections,
        help=f"open SSE+WebSocket streams before new ones are refused (default {d.max_connections})",
    )
    parser.add_argument(
        "--max-message-bytes",
        type=_number(int, 1),
        default=d.max_message_bytes,
        help=f"largest publish body / WebSocket message accepted (default {d.max_message_bytes})",
    )
    parser.add_argument(
        "--queue-size",
        type=_number(int, 1),
        default=d.queue_size,
        help=f"events queued per subscriber before it is dropped as slow (default {d.queue_size})",
    )
    parser.add_argument(
        "--idle-timeout",
        type=_number(float, 0, above=True),
        default=d.idle_timeout,
        help=f"HTTP keep-alive and WebSocket ping timeout in seconds (default {d.idle_timeout})",
    )
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, default=d.log_level, help=f"uvicorn log level (default {d.log_level})"
    )
    add_deployment_arguments(parser)
    add_safety_arguments(parser)
    add_calibration_arguments(parser)


def add_deployment_arguments(parser: argparse.ArgumentParser) -> None:
    """Several worker processes on one port, and the broker they share."""
    d = _DEFAULTS
    group = parser.add_argument_group("workers", "horizontal fan-out: worker processes on one port sharing a broker")
    group.add_argument(
        "--workers",
        type=_number(int, 1, MAX_WORKERS),
        default=d.workers,
        metavar="N",
        help="uvicorn worker processes on the one port (SO_REUSEPORT: the kernel spreads connections); each answers "
        "/metrics for itself and names itself in /healthz and the X-Rtcap-Worker header; more than 1 needs "
        f"--broker redis (default {d.workers})",
    )
    group.add_argument(
        "--broker",
        type=_broker,
        default=d.broker,
        metavar="memory|redis|URL",
        help="who numbers and spreads events: memory (in this process, one worker only), redis (start a private "
        "redis-server on a free loopback port, no persistence, stopped with the target) or a redis:// URL; with "
        f"redis every seq, replay buffer and poll answer is the deployment's (default {d.broker})",
    )


def add_safety_arguments(parser: argparse.ArgumentParser) -> None:
    """Who may publish, which web pages may talk to the server, and how many channels and rooms it keeps."""
    d = _DEFAULTS
    group = parser.add_argument_group("limits and safety")
    group.add_argument(
        "--publish-token",
        default=os.environ.get(TOKEN_ENV) or None,
        metavar="TOKEN",
        help="POST /publish then needs 'Authorization: Bearer TOKEN' or '?token=TOKEN' (else 401); required when "
        f"--host is not loopback; reading stays open (default: ${TOKEN_ENV}, else none: anyone on loopback may "
        "publish; prefer the variable, a command line is visible to other local users)",
    )
    group.add_argument(
        "--allow-origin",
        dest="allowed_origins",
        action="append",
        type=_origin,
        metavar="ORIGIN",
        help="a web origin (https://host[:port]) besides the server's own whose pages may publish and open "
        "WebSockets, repeatable; requests from browser pages on any other origin get 403, requests without an "
        "Origin header (curl, rtcap, Locust) are unaffected (default: none)",
    )
    group.add_argument(
        "--max-channels",
        type=_number(int, 1),
        default=d.max_channels,
        metavar="N",
        help="feed channels kept, ticker channels included; channels are never freed, so a publish, poll or stream "
        "naming a new channel beyond it gets 429 (HTTP) or a close with code 1008 (/ws), an error message (chat "
        f"subscribe) or status 429 (/ws/rpc) (default {d.max_channels})",
    )
    group.add_argument(
        "--max-rooms",
        type=_number(int, 1),
        default=d.max_rooms,
        metavar="N",
        help="chat rooms with members; joining a new room beyond it closes the WebSocket with code 1008; an "
        f"empty room is freed (default {d.max_rooms})",
    )


def add_calibration_arguments(parser: argparse.ArgumentParser) -> None:
    """The calibration knobs: known costs and faults to check measurements against (calibration.py)."""
    d = _DEFAULTS
    group = parser.add_argument_group(
        "calibration", "known costs and faults injected on purpose, to check measurements against the truth"
    )
    group.add_argument(
        "--ballast",
        type=_number(int, 0),
        default=d.ballast,
        metavar="BYTES",
        help=f"resident bytes every open {', '.join(STREAM_TRANSPORTS)} connection holds until it closes; the "
        f"memory-per-connection slope grows by exactly this (default {d.ballast})",
    )
    for transport in STREAM_TRANSPORTS:
        group.add_argument(
            f"--ballast-{transport}",
            type=_number(int, 0),
            default=None,
            metavar="BYTES",
            help=f"ballast for {transport} connections only (default: --ballast)",
        )
    group.add_argument(
        "--delay-ms",
        type=_number(float, 0, MAX_DELAY_MS),
        default=d.delay_ms,
        metavar="D",
        help="write no event before it is D ms old (its ts stays the publish time): pushed events wait "
        "per connection, polls see the channel as it was D ms ago; delivery latency shifts by D; "
        f"held events count against --queue-size (default {d.delay_ms:g})",
    )
    faults = (
        ("drop", "never write it (live, replay or resume); it stays in the buffer"),
        ("duplicate", "write it twice in a row"),
        ("swap", "write it right after the next event (k*N after k*N+1)"),
    )
    for kind, what in faults:
        group.add_argument(
            f"--{kind}-every",
            type=_number(int, 0),
            default=getattr(d, f"{kind}_every"),
            metavar="N",
            help=f"on sse, the ws feed and polls (not chat), for every event with seq %% N == 0: {what}; "
            "counted in rtcap_injected_total (default 0: off)",
        )


def config_from_args(args: argparse.Namespace) -> TargetConfig:
    """Build a TargetConfig from options added by add_target_arguments()."""
    return TargetConfig(
        host=args.host,
        port=args.port,
        rate=args.rate,
        payload=args.payload,
        channels=tuple(args.channels or _DEFAULTS.channels),
        buffer=args.buffer,
        state_bytes=args.state_bytes,
        heartbeat=args.heartbeat,
        retry_ms=args.retry_ms,
        max_message_bytes=args.max_message_bytes,
        max_connections=args.max_connections,
        idle_timeout=args.idle_timeout,
        log_level=args.log_level,
        queue_size=args.queue_size,
        cache_ttl=args.cache_ttl,
        state_validators=args.state_validators,
        ballast=args.ballast,
        ballast_by={t: getattr(args, f"ballast_{t}") for t in STREAM_TRANSPORTS
                    if getattr(args, f"ballast_{t}") is not None},
        delay_ms=args.delay_ms,
        drop_every=args.drop_every,
        duplicate_every=args.duplicate_every,
        swap_every=args.swap_every,
        publish_token=args.publish_token,
        allowed_origins=tuple(args.allowed_origins or ()),
        max_channels=args.max_channels,
        max_rooms=args.max_rooms,
        workers=args.workers,
        broker=args.broker,
    )


def build_arg_parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m rtcap.targets.reference`."""
    parser = argparse.ArgumentParser(
        prog="python -m rtcap.targets.reference",
        description="Reference real-time target: polling, long polling, SSE and WebSockets on one server.",
    )
    add_target_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse `argv`, serve until SIGINT/SIGTERM and return the exit status."""
    parser = build_arg_parser()
    args = parser.parse_args(argv)
    problem = workers_problem(args.workers, args.broker)
    if problem:  # one line, not the usage: the fix is in the message
        print(f"rtcap reference target: error: {problem}", file=sys.stderr)
        return 2
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    if not config.loopback:
        shown = config.host or "every interface"
        if config.publish_token is None:
            print(f"rtcap reference target: error: --host {shown} is not loopback: give --publish-token TOKEN "
                  f"(or set {TOKEN_ENV}) so that strangers cannot publish", file=sys.stderr)
            return 2
        print(f"rtcap reference target: warning: listening on {shown}, beyond this machine: anyone who can reach "
              "the port can read every channel and open connections; publishing needs the token", file=sys.stderr)
    from .server import ListenError, serve  # deferred: --help and argument errors need no uvicorn import
    from .workers import DeploymentError

    try:
        serve(config)
    except (ListenError, DeploymentError) as exc:
        print(f"rtcap reference target: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a signal that arrived before the handlers were installed
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
