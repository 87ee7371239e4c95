"""--source-ips: the generator's connections leave from the given local addresses, round robin, as the server
sees them (real sockets on loopback, where all of 127.0.0.0/8 is local)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest

from rtcap.loadtests.transports import netio
from tests.loadtests.locust_run import start_locust

SOURCES = ["127.0.0.2", "127.0.0.3"]


@pytest.fixture
def sources() -> Iterator[list[str]]:
    netio.use_source_addresses(SOURCES)
    try:
        yield SOURCES
    finally:
        netio.use_source_addresses(())


def peers_of(port: int) -> list[str]:
    """The remote addresses of the established connections to `port`, as the server's side of loopback holds them."""
    return sorted(c.raddr.ip for c in psutil.net_connections(kind="tcp")
                  if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port and c.raddr)


def test_connections_alternate_between_the_source_addresses(reference_url: str, sources: list[str]) -> None:
    port = urlsplit(reference_url).port
    opened = [netio.open_counting_connection(reference_url, timeout=5) for _ in range(4)]
    try:
        assert [sock.getsockname()[0] for sock in opened] in (SOURCES * 2, SOURCES[::-1] * 2)
        assert peers_of(port) == sorted(SOURCES * 2)  # what the server's side of the connections says
    finally:
        for sock in opened:
            sock.close()


def test_without_source_addresses_the_kernel_picks(reference_url: str) -> None:
    sock = netio.open_counting_connection(reference_url, timeout=5)
    try:
        assert sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()


def test_a_locust_generator_opens_its_users_connections_from_them(reference_url: str, tmp_path: Path) -> None:
    """Through the option: Locust's parser, the generator's init hook, the users' clients."""
    port = urlsplit(reference_url).port
    locust = start_locust(reference_url, "SSEUser", 6, 8, tmp_path, "--source-ips", ",".join(SOURCES))
    try:
        deadline = time.monotonic() + 30
        seen: list[str] = []
        while time.monotonic() < deadline and locust.poll() is None:
            seen = [ip for ip in peers_of(port) if ip != "127.0.0.1"]  # the fixture's other clients, if any
            if len(seen) >= 6:
                break
            time.sleep(0.2)
        assert seen == sorted(SOURCES * 3), (tmp_path / "locust.log").read_text()
    finally:
        if locust.poll() is None:
            locust.terminate()
        locust.wait(timeout=30)
