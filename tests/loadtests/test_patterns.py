"""The WebSocket patterns in real headless Locust runs against the reference target: signalling, request/response
over a WebSocket and over REST, and typing indicators fanned out to rooms of a given size.

All runs go at once (each is its own Locust process), so the module costs one run's wall time.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import launch_reference
from rtcap.loadtests.generator.timeline import read_timeline
from tests.loadtests.locust_run import finish, locust_stats, start_locust

SECONDS = 7
USERS = 4
CATALOG = "loadtests/generator/catalog.py"


def active(record: Path, transport: str) -> float:
    """Seconds' worth of full-rate work the run surely did: its busy seconds minus the partial first and last,
    less 20% because users start over a second at random phases.

    Six Locust processes starting at once on 2 cores spend part of their run time importing: rates are
    checked over the seconds that actually ran, and each run must have had a few of them.
    """
    busy = [row for row in read_timeline(record / "timeline.jsonl")
            if row["transport"] == transport and (row["requests"] or row["delivered"] or row.get("messages_sent"))]
    assert len(busy) >= 3, f"{record.name}: only {len(busy)} second(s) of activity"
    return 0.8 * (len(busy) - 2)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[dict, Path]]]:
    """name -> (per-transport timeline totals, record directory) of every run, all against one target."""
    target = launch_reference(rate=20)
    base = target.adapter.base_url
    root = tmp_path_factory.mktemp("patterns")
    # An "rpc" endpoint that never answers by id: the feed socket replies to requests with id-less error frames.
    silent = root / "silent.toml"
    silent.write_text(f'name = "silent"\nbase_url = "{base}"\n[transports.rpc]\nurl = "/ws?channel=live"\n'
                      'request = \'{{"type":"request","id":{id}}}\'\n', encoding="utf-8")
    plans = {
        "signal": ("SignalUser", USERS),
        "rpc": ("RpcUser", USERS, "--request-rate", "20"),
        "rpc-silent": ("RpcUser", 2, "--request-rate", "5", "--request-timeout", "1", "--target", str(silent)),
        "rest": ("RestUser", USERS, "--request-rate", "10", "--channel", "quiet-rest"),
        "room2": ("PresenceUser", 8, "--typing-rate", "5", "--room-size", "2", "--chat-room", "two"),
        "room4": ("PresenceUser", 8, "--typing-rate", "5", "--room-size", "4", "--chat-room", "four"),
    }
    started: dict[str, tuple[subprocess.Popen, Path]] = {}
    try:
        for name, (user, users, *extra) in plans.items():
            record = root / name
            started[name] = (start_locust(base, user, users, SECONDS, record, *extra, locustfile=CATALOG), record)
        yield {name: (finish(process, record), record) for name, (process, record) in started.items()}
    finally:
        for process, _ in started.values():
            if process.poll() is None:
                process.kill()
        target.stop()


def test_signalling_fetches_each_announced_event_once_and_counts_both_sockets(runs) -> None:
    totals, record = runs["signal"]
    signal = totals["signal"]
    assert signal["delivered"] >= USERS * 20 * active(record, "signal")
    assert signal["errors"] == 0 and signal.get("lost", 0) == signal.get("duplicated", 0) == 0
    # One notice per event; at most one fetch per notice (fewer when a fetch brought several events).
    assert signal["notifications"] >= signal["delivered"] >= signal["round_trips"] > 0
    # Bytes per event count the fetch's HTTP request and response heads too: far above the 64 B payload.
    assert (signal["bytes_received"] + signal["bytes_sent"]) / signal["delivered"] > 64 + 150
    delivery = locust_stats(record)[("signal", "delivery")]
    assert int(delivery["Failure Count"]) == 0 and float(delivery["99%"]) < 500


def test_rpc_requests_are_answered_and_timed_by_id(runs) -> None:
    totals, record = runs["rpc"]
    rpc = totals["rpc"]
    request = locust_stats(record)[("rpc", "request")]
    answered = int(request["Request Count"])
    assert answered >= USERS * 20 * active(record, "rpc") and int(request["Failure Count"]) == 0
    assert rpc.get("unanswered", 0) == 0 and rpc["errors"] == 0, (rpc, (record / "locust.log").read_text()[-3000:])
    # Every request event is an answer (requests fired while Locust stops can miss its CSV, not the timeline).
    assert rpc["round_trips"] == rpc["requests"] >= answered
    assert float(request["99%"]) < 500


def test_rpc_requests_nobody_answers_are_errors_not_silence(runs) -> None:
    totals, record = runs["rpc-silent"]
    rpc = totals["rpc"]
    stats = locust_stats(record)
    # 2 users x 5/s, a 1 s timeout: all but the last second's requests time out during the run.
    assert rpc["unanswered"] >= 2 * 5 * (active(record, "rpc") - 1)
    assert int(stats[("rpc", "unanswered")]["Failure Count"]) > 0 and rpc["unanswered"] == rpc["errors"]
    assert rpc.get("round_trips", 0) == 0 and ("rpc", "request") not in stats
    # Every request was accounted for: timed out, or still in flight when Locust stopped the user.
    assert rpc["unanswered"] + rpc.get("in_flight", 0) >= 2 * 5 * active(record, "rpc")


def test_rest_requests_on_keep_alive_revalidate_with_the_etag(runs) -> None:
    totals, record = runs["rest"]
    rest = totals["rest"]
    latest = locust_stats(record)[("rest", "/latest")]
    assert int(latest["Request Count"]) >= USERS * 10 * active(record, "rest") and int(latest["Failure Count"]) == 0
    assert rest["connects"] == USERS  # keep-alive: one connection per user for the whole run
    # Nothing is published on the channel: after the first 200, every answer is a 304 with no body.
    assert rest["bytes_received"] / rest["round_trips"] < 200


@pytest.mark.parametrize(("run", "room_size"), [("room2", 2), ("room4", 4)])
def test_typing_indicators_fan_out_to_the_other_members_of_each_room(runs, run: str, room_size: int) -> None:
    totals, record = runs[run]
    presence = totals["presence"]
    sent = presence["messages_sent"]
    assert sent >= 8 * 5 * active(record, "presence")
    assert presence["sent_room_members"] == room_size * sent
    # Each indicator reaches the room's other members (edges trimmed by start and stop); own echoes are not counted.
    assert (room_size - 1) * sent * 0.8 <= presence["delivered"] <= (room_size - 1) * sent
    assert presence["messages_received"] >= presence["delivered"] + sent * 0.8  # the own echoes are received too
    assert presence["errors"] == 0 and presence.get("lost", 0) == 0
