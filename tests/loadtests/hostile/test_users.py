"""rtcap's Locust users against the hostile server, in a real headless Locust run: a polling viewer whose
server sends the head and goes silent, an SSE listener sent a 16 MB event, a WebSocket listener sent a 16 MB
frame. Each limit reaches the run as a failure with its name, counted as an error of the right transport,
and the run ends on time with the users still alive (no traceback)."""

from __future__ import annotations

import csv
from pathlib import Path

from tests.loadtests.locust_run import finish, start_locust

SECONDS = 6


def adapter_file(directory: Path, port: int) -> Path:
    """An adapter whose transports lead to hostile cases."""
    path = directory / "adapter.toml"
    path.write_text(f'''name = "hostile"
base_url = "http://127.0.0.1:{port}"
[publish]
mode = "self"
[transports.poll]
url = "/http-silent-after-head?channel={{channel}}&since={{cursor}}"
events = "events"
cursor = "seq"
[transports.sse]
url = "/sse-huge-event?channel={{channel}}"
[transports.ws]
url = "/ws-huge-frame?channel={{channel}}"
''', encoding="utf-8")
    return path


def failures(record: Path) -> list[dict[str, str]]:
    with (record / "locust_failures.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_users_report_each_limit_as_a_named_error_of_their_transport(hostile: int, tmp_path: Path) -> None:
    record = tmp_path / "run"
    # --read-timeout 1: the poll's body deadline is 1 s (no deadline is longer than the read timeout).
    locust = start_locust(f"http://127.0.0.1:{hostile}", "PollUser", 3, SECONDS, record, "--target",
                          str(adapter_file(tmp_path, hostile)), "--read-timeout", "1", "SSEUser", "WebSocketUser",
                          locustfile="loadtests/generator/catalog.py")
    totals = finish(locust, record, timeout=SECONDS + 30)
    errors = {(row["Method"], row["Error"]) for row in failures(record)}
    expected = {
        "GET": "not complete within 1 s of its head",
        "sse": "SSE line longer than 1 MiB",
        "ws": "WebSocket message larger than 1 MiB",
    }
    for method, message in expected.items():
        assert any(m == method and message in error for m, error in errors), (method, errors)
    for transport in ("poll", "sse", "ws"):
        assert totals[transport]["errors"] >= 1, (transport, totals[transport])


def test_a_server_dropping_every_connection_gets_no_reconnect_storm(hostile: int, tmp_path: Path) -> None:
    """Before, any connection that opened reset the backoff: about 4 reconnects per second per user."""
    adapter = tmp_path / "storm.toml"
    adapter.write_text(f'''name = "storm"
base_url = "http://127.0.0.1:{hostile}"
[publish]
mode = "self"
[transports.ws]
url = "/ws-close-storm?channel={{channel}}"
''', encoding="utf-8")
    record = tmp_path / "run"
    locust = start_locust(f"http://127.0.0.1:{hostile}", "WebSocketUser", 2, SECONDS, record, "--target",
                          str(adapter), locustfile="loadtests/generator/catalog.py")
    totals = finish(locust, record, timeout=SECONDS + 30)
    # Doubling ceilings 0.5, 1, 2, 4, 8, 10 s: well under 12 connects per user in 6 s; a reset each time gave ~24.
    assert 2 <= totals["ws"]["connects"] <= 24, totals["ws"]
