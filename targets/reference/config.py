"""Configuration of the bundled reference target."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .access import is_loopback, normalise_origin
from .broker import broker_kind
from .metrics import STREAM_TRANSPORTS

# Channel and room names end up in ETag headers and Prometheus label values, so keep them
# to characters that need no quoting in either place.
NAME_PATTERN = r"^[A-Za-z0-9_.:~@+\-]{1,128}$"
_NAME_RE = re.compile(NAME_PATTERN)

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")

# Calibration knobs (see calibration.py): upper bound of --delay-ms, one hour (rejects inf).
MAX_DELAY_MS = 3_600_000
# Upper bound of --cache-ttl, one hour: longer is no longer a cache in front of a live feed.
MAX_CACHE_TTL_S = 3600.0
# Feed channels are never freed, so anyone who can name one could grow the server without bound.
DEFAULT_MAX_CHANNELS = 1000
# A room lives while it has members, so rooms never outnumber streams: the default matches --max-connections.
DEFAULT_MAX_ROOMS = 10000
# Worker processes on one port: more than a few per core only adds context switches.
MAX_WORKERS = 64


def workers_problem(workers: int, broker: str) -> str | None:
    """Why `workers` cannot run with `broker`, in one line; None when they can."""
    if not 1 <= workers <= MAX_WORKERS:
        return f"--workers must be 1..{MAX_WORKERS}, got {workers}"
    if workers > 1 and broker == "memory":
        return (f"--workers {workers} needs a broker the workers share: add --broker redis (starts a redis-server) "
                "or --broker redis://HOST:PORT")
    return None


def valid_name(name: str) -> bool:
    """True if `name` is usable as a channel or room name."""
    return bool(_NAME_RE.match(name))


@dataclass(frozen=True)
class TargetConfig:
    """Every knob of the reference target; defaults match the command-line defaults."""

    host: str = "127.0.0.1"
    port: int = 8000
    rate: float = 1.0
    payload: int = 64
    channels: tuple[str, ...] = ("live",)
    buffer: int = 1000
    state_bytes: int = 0
    heartbeat: float = 15.0
    retry_ms: int = 3000
    max_message_bytes: int = 65536
    max_connections: int = 10000
    idle_timeout: float = 60.0
    log_level: str = "warning"
    queue_size: int = 1000
    cache_ttl: float = 0.0  # seconds a /poll or /state answer is reused (httpcache.py); 0: no cache
    state_validators: bool = False  # /state sends ETag/Last-Modified and answers 304, as with ?conditional=1
    # Calibration knobs (calibration.py); all 0/None leaves the target exactly as without them.
    ballast: int = 0
    ballast_by: dict[str, int] = field(default_factory=dict)  # per stream transport (--ballast-T), else `ballast`
    delay_ms: float = 0.0
    drop_every: int = 0
    duplicate_every: int = 0
    swap_every: int = 0
    # Access (access.py). The token is kept out of repr() so it never lands in a log or a traceback.
    publish_token: str | None = field(default=None, repr=False)  # None: anyone may publish (loopback only)
    allowed_origins: tuple[str, ...] = ()  # browser origins besides the server's own (normalised)
    max_channels: int = DEFAULT_MAX_CHANNELS
    max_rooms: int = DEFAULT_MAX_ROOMS
    # Deployment (workers.py, broker.py): N processes on one port sharing a broker. A Redis URL may hold a password.
    workers: int = 1
    broker: str = field(default="memory", repr=False)  # "memory", "redis" (start a redis-server) or a redis:// URL

    def __post_init__(self) -> None:
        # Accept any iterable of names (argparse hands over a list) but store an immutable tuple.
        object.__setattr__(self, "channels", tuple(dict.fromkeys(self.channels)))
        if not self.publish_token:  # an empty token (e.g. an empty environment variable) is no token
            object.__setattr__(self, "publish_token", None)
        problems = []
        origins = []
        for origin in self.allowed_origins:
            try:
                origins.append(normalise_origin(origin))
            except ValueError as exc:
                problems.append(str(exc))
        object.__setattr__(self, "allowed_origins", tuple(dict.fromkeys(origins)))
        if not 0 <= self.port <= 65535:
            problems.append(f"port must be 0..65535, got {self.port}")
        if self.rate < 0:
            problems.append(f"rate must be >= 0, got {self.rate}")
        if self.payload < 0:
            problems.append(f"payload must be >= 0, got {self.payload}")
        if not self.channels:
            problems.append("at least one channel is required")
        problems += [f"invalid channel name {c!r}" for c in self.channels if not valid_name(c)]
        for name in ("buffer", "max_message_bytes", "max_connections", "queue_size", "max_channels", "max_rooms"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if len(self.channels) > self.max_channels:
            problems.append(f"max_channels ({self.max_channels}) is below the {len(self.channels)} ticker channels")
        if self.state_bytes < 0:
            problems.append(f"state_bytes must be >= 0, got {self.state_bytes}")
        if self.heartbeat < 0:
            problems.append(f"heartbeat must be >= 0 (0 disables), got {self.heartbeat}")
        if self.retry_ms < 0:
            problems.append(f"retry_ms must be >= 0, got {self.retry_ms}")
        if self.idle_timeout <= 0:
            problems.append(f"idle_timeout must be > 0, got {self.idle_timeout}")
        for name in ("ballast", "drop_every", "duplicate_every", "swap_every"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0 (0 disables), got {getattr(self, name)}")
        for transport, value in self.ballast_by.items():
            if transport not in STREAM_TRANSPORTS:
                problems.append(f"ballast_by: {transport!r} holds no stream; choose from {', '.join(STREAM_TRANSPORTS)}")
            elif value < 0:
                problems.append(f"ballast_by[{transport!r}] must be >= 0, got {value}")
        if not 0 <= self.delay_ms <= MAX_DELAY_MS:  # also rejects NaN
            problems.append(f"delay_ms must be 0..{MAX_DELAY_MS:g}, got {self.delay_ms}")
        if not 0 <= self.cache_ttl <= MAX_CACHE_TTL_S:  # also rejects NaN
            problems.append(f"cache_ttl must be 0..{MAX_CACHE_TTL_S:g} seconds (0 disables), got {self.cache_ttl}")
        try:
            broker_kind(self.broker)
        except ValueError as exc:
            problems.append(str(exc))
        deployment = workers_problem(self.workers, self.broker)
        if deployment:
            problems.append(deployment)
        if self.log_level not in LOG_LEVELS:
            problems.append(f"log_level must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}")
        if problems:
            raise ValueError("; ".join(problems))

    def ballast_for(self, transport: str) -> int:
        """Bytes of ballast each open `transport` stream (metrics.STREAM_TRANSPORTS: sse, ndjson, ws, chat) holds:
        its own --ballast-T where it has one, else --ballast; 0 for anything else."""
        if transport not in STREAM_TRANSPORTS:
            return 0
        return self.ballast_by.get(transport, self.ballast)

    @property
    def calibrated(self) -> bool:
        """True if delay or fault injection is on (ballast alone changes no delivery path)."""
        return self.delay_ms > 0 or self.drop_every > 0 or self.duplicate_every > 0 or self.swap_every > 0

    @property
    def broker_kind(self) -> str:
        """"memory" (in-process, one worker) or "redis" (shared by every worker)."""
        return broker_kind(self.broker)

    @property
    def loopback(self) -> bool:
        """True if the server listens on loopback only: only then may publishing stay open without a token."""
        return is_loopback(self.host)

    @property
    def default_channel(self) -> str:
        """Channel used by endpoints when the client names none."""
        return self.channels[0]
