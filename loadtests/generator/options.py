"""Command-line options of rtcap's Locust users and shape; they also appear in the Locust web UI's start form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from locust import events

from rtcap.loadtests.transports import limits


@events.init_command_line_parser.add_listener
def add_arguments(parser: Any) -> None:
    """Register rtcap's options with Locust's argument parser (env vars RTCAP_*)."""
    # Locust's own parser, not an argument group: only it understands include_in_web_ui and env_var.
    parser.add_argument("--target", default="", env_var="RTCAP_TARGET", help="Target adapter file (TOML) describing the server; default: the bundled reference target at --host")
    parser.add_argument("--channel", default="", env_var="RTCAP_CHANNEL", help="Channel to subscribe to (default: the target adapter's, live for the reference target)")
    parser.add_argument("--poll-interval", type=float, default=1.0, env_var="RTCAP_POLL_INTERVAL", help="Seconds between two polls of one viewer")
    parser.add_argument(
        "--no-conditional-get", action="store_true", default=False, env_var="RTCAP_NO_CONDITIONAL_GET",
        help="Polling viewers do not send If-None-Match (every poll gets a full 200)",
    )
    parser.add_argument("--chat-room", default="", env_var="RTCAP_CHAT_ROOM", help="Room the WebSocket chatters join (default: the adapter's, lobby)")
    parser.add_argument("--chat-rate", type=float, default=0.2, env_var="RTCAP_CHAT_RATE", help="Chat messages per second sent by each chatter (0: listen only)")
    parser.add_argument("--chat-size", type=int, default=64, env_var="RTCAP_CHAT_SIZE", help="Bytes of text in each chat message")
    parser.add_argument("--request-rate", type=float, default=1.0, env_var="RTCAP_REQUEST_RATE", help="RPC and REST requests per second per user (0: closed loop, the next once the last is answered)")
    parser.add_argument("--request-timeout", type=float, default=5.0, env_var="RTCAP_REQUEST_TIMEOUT", help="Seconds after which an unanswered RPC request counts as an error")
    parser.add_argument("--typing-rate", type=float, default=1.0, env_var="RTCAP_TYPING_RATE", help="Typing indicators per second sent by each presence user")
    parser.add_argument("--room-size", type=int, default=10, env_var="RTCAP_ROOM_SIZE", help="Presence users per room (rooms ROOM-0, ROOM-1...; 0: all in one room)")
    parser.add_argument("--reconnect-max", type=float, default=10.0, env_var="RTCAP_RECONNECT_MAX", help="Ceiling of the reconnect backoff, seconds")
    parser.add_argument("--read-timeout", type=float, default=60.0, env_var="RTCAP_READ_TIMEOUT", help="Seconds of silence before a stream counts as dead")
    parser.add_argument("--max-message-bytes", type=int, default=limits.WS_MESSAGE_BYTES, env_var="RTCAP_MAX_MESSAGE_BYTES",
                        help="Largest SSE event or line and WebSocket message a client accepts; a larger one is an error against the target and closes the connection")
    parser.add_argument("--max-body-bytes", type=int, default=limits.HTTP_BODY_BYTES, env_var="RTCAP_MAX_BODY_BYTES",
                        help="Largest HTTP response body a poll or fetch accepts")
    parser.add_argument("--head-timeout", type=float, default=limits.HEAD_TIMEOUT_S, env_var="RTCAP_HEAD_TIMEOUT",
                        help="Seconds a poll, fetch or connection may wait for its response head (long polls: up to --read-timeout)")
    parser.add_argument("--steps", default="", env_var="RTCAP_STEPS", help="Step shape: users per step, e.g. '50,100,150' or '50:250:50'")
    parser.add_argument("--step-hold", type=float, default=20.0, env_var="RTCAP_STEP_HOLD", help="Step shape: seconds each step holds after its users are running")
    parser.add_argument("--step-settle", type=float, default=5.0, env_var="RTCAP_STEP_SETTLE", help="Step shape: seconds at the start of each hold left out of the measurement (the minimum, with --step-settle-max)")
    parser.add_argument("--step-settle-max", type=float, default=0.0, env_var="RTCAP_STEP_SETTLE_MAX", help="Step shape: wait up to this many seconds for the target's memory to settle before measuring (0: fixed --step-settle); needs --step-settle-samples")
    parser.add_argument("--step-settle-samples", default="", env_var="RTCAP_STEP_SETTLE_SAMPLES", include_in_web_ui=False, help="Step shape: JSON-lines file of the target's memory samples ({t, rss_bytes}), appended while the test runs")
    parser.add_argument("--step-spawn-rate", type=float, default=100.0, env_var="RTCAP_STEP_SPAWN_RATE", help="Step shape: users started per second between steps")
    parser.add_argument("--step-ramp-timeout", type=float, default=60.0, env_var="RTCAP_STEP_RAMP_TIMEOUT", help="Step shape: give up waiting for a step's users after this many seconds")
    parser.add_argument("--rtcap-record", default="", env_var="RTCAP_RECORD", include_in_web_ui=False, help="Directory to write the per-second timeline and step windows to")


@dataclass(frozen=True)
class Settings:
    """The options a user or shape reads, with defaults when Locust runs as a library without parsed options."""

    target: str = ""
    channel: str = ""
    poll_interval: float = 1.0
    conditional_get: bool = True
    chat_room: str = ""
    chat_rate: float = 0.2
    chat_size: int = 64
    request_rate: float = 1.0
    request_timeout: float = 5.0
    typing_rate: float = 1.0
    room_size: int = 10
    reconnect_max: float = 10.0
    read_timeout: float = 60.0
    max_message_bytes: int = limits.WS_MESSAGE_BYTES
    max_body_bytes: int = limits.HTTP_BODY_BYTES
    head_timeout: float = limits.HEAD_TIMEOUT_S
    steps: str = ""
    step_hold: float = 20.0
    step_settle: float = 5.0
    step_settle_max: float = 0.0
    step_settle_samples: str = ""
    step_spawn_rate: float = 100.0
    step_ramp_timeout: float = 60.0
    rtcap_record: str = ""

    @classmethod
    def of(cls, environment: Any) -> "Settings":
        """Read the settings from a Locust environment's parsed options."""
        parsed = getattr(environment, "parsed_options", None)
        if parsed is None:
            return cls()
        values = {name: getattr(parsed, name) for name in cls.__dataclass_fields__ if hasattr(parsed, name)}
        if hasattr(parsed, "no_conditional_get"):
            values["conditional_get"] = not parsed.no_conditional_get
        return cls(**values)
