"""Parse-time checks of option values: argparse types and the bounds they enforce.

A bad value exits 2 with argparse's one-line "argument --x: ..." message before anything starts: a typo must
cost an error line, not a run. loadtests/options.py gives each option its type from here; checks that need
several options together are preflight checks (loadtests/run/validate.py).
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

# Upper bounds of the numeric options: far beyond any sensible run, yet finite, so that inf, 1e300 and
# slips of the keyboard are refused before load instead of overflowing a timer or a report.
MAX_SECONDS = 86_400.0
"""--hold, --settle, --settle-max: one day."""
MAX_INTERVAL_S = 3_600.0
"""--poll-interval, check-target --timeout: one hour."""
MAX_MS = 3_600_000.0
"""--slo-p99-ms, --generator-lag-limit-ms: one hour."""
MAX_SPAWN_RATE = 100_000.0
"""--spawn-rate: users started per second."""
MAX_EVENT_RATE = 10_000.0
"""--rate: events published per second."""
MAX_USER_RATE = 1_000.0
"""--chat-rate, --request-rate, --typing-rate: messages per second per user."""
MAX_PAYLOAD_BYTES = 1_048_576
"""--payload: bytes per event."""
MAX_PROCESSES = 256
"""--processes: load-generating processes on one host."""
MAX_HELD_PER_USER = 10_000
"""--held-per-user: connections one feed listener holds."""
MAX_PID = 4_194_304
"""--target-pid: Linux's largest pid_max."""
MAX_ROOM_SIZE = 1_000_000
"""--room-size: users per room (the most users one step may have)."""
MAX_NAME_LENGTH = 100
"""--name: characters; the run directory's name, inside every path the run prints."""

_URL = re.compile(r"^https?://[^/?#{}\s]+")


def _show(value: float) -> str:
    """A bound as people write it: 86,400 rather than 86400.0, 0.5 rather than 5e-01."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def number(kind: type, minimum: float | None = None, maximum: float | None = None, *,
           above: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite `kind` (int or float) from `minimum` (exclusive with `above`) to `maximum`."""
    low = None if minimum is None else f"{'above' if above else 'at least'} {_show(minimum)}"
    span = " and ".join(part for part in (low, None if maximum is None else f"at most {_show(maximum)}") if part)
    if minimum is not None and maximum is not None and not above:
        span = f"from {_show(minimum)} to {_show(maximum)}"

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(
                f"expected {'a whole number' if kind is int else 'a number'}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number {span}, got {text!r}")
        if ((minimum is not None and (value < minimum or (above and value == minimum)))
                or (maximum is not None and value > maximum)):
            raise argparse.ArgumentTypeError(f"must be {span}, got {text}")
        return value

    return parse


def run_name(text: str) -> str:
    """An argparse type: a run name is one directory under --out-dir, so one plain path component."""
    problem = (
        "must not be empty" if not text
        else f"has {len(text)} characters, at most {MAX_NAME_LENGTH}" if len(text) > MAX_NAME_LENGTH
        else "must not contain '/' or '\\' (it names one directory under --out-dir)" if "/" in text or "\\" in text
        else "must not start with '.' (no '..', no hidden directory)" if text.startswith(".")
        else "must not contain control characters" if any(ord(c) < 32 or ord(c) == 127 for c in text)
        else None
    )
    if problem:
        raise argparse.ArgumentTypeError(f"{problem}, got {text!r}")
    return text


def http_url(text: str) -> str:
    """An argparse type: an absolute http(s) base URL, without its trailing slash."""
    if not _URL.match(text):
        raise argparse.ArgumentTypeError(f"expected an absolute http(s) URL such as http://127.0.0.1:8000, got {text!r}")
    return text.rstrip("/")


MAX_SOURCE_ADDRESSES = 1024
"""--source-ips: local addresses the generator's connections are spread over (~28k ports each)."""
MAX_WORKERS = 1024
"""--expect-workers: Locust worker processes a master waits for."""


def source_addresses(text: str) -> list[str]:
    """An argparse type: local addresses to open connections from, as a comma list of addresses or ranges
    (`127.0.0.2-127.0.0.9`, `::2,::3`); "" is none (the kernel picks the source address)."""
    import ipaddress

    found: list[str] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        first, _, last = part.partition("-")
        try:
            low = ipaddress.ip_address(first.strip())
            high = ipaddress.ip_address(last.strip()) if last else low
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r} is not an IP address or a range such as "
                                             "127.0.0.2-127.0.0.9") from None
        if low.version != high.version or high < low:
            raise argparse.ArgumentTypeError(f"range {part!r} runs backwards or mixes IPv4 and IPv6")
        if int(high) - int(low) + 1 + len(found) > MAX_SOURCE_ADDRESSES:
            raise argparse.ArgumentTypeError(f"{text!r} names more than {MAX_SOURCE_ADDRESSES:,} addresses")
        found += [str(type(low)(n)) for n in range(int(low), int(high) + 1)]
    if len(set(found)) < len(found):
        raise argparse.ArgumentTypeError(f"{text!r} names an address twice")
    return found


def choice(*allowed: str) -> Callable[[str], str]:
    """An argparse type: one of `allowed` (a type, not argparse's `choices`, so both parsers share it)."""
    def parse(text: str) -> str:
        if text not in allowed:
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(allowed)}, got {text!r}")
        return text

    return parse


def bind_host(text: str) -> str:
    """An argparse type: an IP address to listen on (the Locust master's --master-bind-host)."""
    import ipaddress

    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an IP address to listen on, such as 127.0.0.1 or 0.0.0.0, "
                                         f"got {text!r}") from None
