"""Each user class in a real headless Locust run against the real reference target on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtcap.bench.proxy import CutProxy
from tests.loadtests.locust_run import finish, locust_stats, start_locust, subscribers

USERS = 10
SECONDS = 5


@pytest.mark.parametrize(("user_class", "transport"), [("SSEUser", "sse"), ("WebSocketUser", "ws")])
def test_push_users_receive_every_event_with_low_latency(reference_url: str, tmp_path: Path, user_class: str, transport: str) -> None:
    totals = finish(start_locust(reference_url, user_class, USERS, SECONDS, tmp_path), tmp_path)[transport]
    # 20 events/s for about SECONDS to each of USERS connections (spawn and stop trim the edges).
    assert totals["delivered"] >= USERS * 20 * (SECONDS - 2)
    assert totals["connects"] == USERS
    assert totals["open_connections"] == USERS
    assert totals["errors"] == 0
    assert totals.get("lost", 0) == totals.get("duplicated", 0) == totals.get("reordered", 0) == 0
    assert totals["bytes_received"] > totals["delivered"] * 64  # each event carries a 64-byte payload
    stats = locust_stats(tmp_path)
    delivery = stats[(transport, "delivery")]
    assert int(delivery["Failure Count"]) == 0
    assert float(delivery["99%"]) < 500  # loopback push: milliseconds, not seconds
    # Each subscriber's own accounting: a contiguous run of seqs, all received.
    subs = subscribers(tmp_path)
    assert len(subs) == USERS
    for sub in subs:
        assert sub["transport"] == transport and sub["lost"] == 0
        assert sub["received"] == sub["highest"] - sub["first"] + 1


def test_polling_viewer_sees_events_as_stale_as_its_interval(reference_url: str, tmp_path: Path) -> None:
    run = start_locust(reference_url, "PollUser", USERS, SECONDS, tmp_path, "--poll-interval", "0.5")
    totals = finish(run, tmp_path)["poll"]
    assert totals["requests"] >= USERS * 2 * (SECONDS - 2)
    assert totals["delivered"] >= USERS * 20 * (SECONDS - 2)
    assert totals["errors"] == 0 and totals.get("lost", 0) == 0
    stats = locust_stats(tmp_path)
    # Staleness is spread over the poll interval: median near 250 ms, never much above 500 ms.
    assert 100 <= float(stats[("poll", "delivery")]["50%"]) <= 400
    assert float(stats[("poll", "delivery")]["99%"]) <= 700
    assert int(stats[("GET", "/poll")]["Failure Count"]) == 0


def test_conditional_get_turns_idle_polls_into_304s(reference_url: str, tmp_path: Path) -> None:
    # A channel nobody publishes on: after the first poll every answer is 304 Not Modified, a few bytes.
    run = start_locust(reference_url, "PollUser", 5, 4, tmp_path, "--poll-interval", "0.2", "--channel", "quiet")
    totals = finish(run, tmp_path)["poll"]
    assert totals["requests"] >= 5 * 10
    assert totals["delivered"] == 0
    # 304s have no body: well under 200 bytes received per request (a 200 with JSON would be more).
    assert totals["bytes_received"] / totals["requests"] < 200


def test_chatters_receive_every_broadcast_of_their_room(reference_url: str, tmp_path: Path) -> None:
    run = start_locust(reference_url, "ChatUser", 4, SECONDS, tmp_path, "--chat-rate", "4", "--chat-room", "test-room")
    totals = finish(run, tmp_path)["chat"]
    # 4 chatters x 4 msg/s, each broadcast to all 4 members.
    assert totals["delivered"] >= 4 * 4 * 4 * (SECONDS - 2)
    assert totals["errors"] == 0 and totals.get("lost", 0) == 0
    # Feed events of the subscribed channel arrive over the same socket but are not chat events.
    assert int(locust_stats(tmp_path)[("chat", "delivery")]["Failure Count"]) == 0


@pytest.mark.parametrize("users, per_user", [(5, 1), (1, 5)], ids=["a-user-per-connection", "one-user-of-five"])
@pytest.mark.parametrize(("user_class", "transport"), [("SSEUser", "sse"), ("WebSocketUser", "ws")])
def test_push_users_reconnect_and_resume_without_loss(reference_url: str, tmp_path: Path, user_class: str, transport: str,
                                                      users: int, per_user: int) -> None:
    host, port = reference_url.removeprefix("http://").rsplit(":", 1)
    proxy = CutProxy(host, int(port))
    try:
        # --held-per-user 5: the five connections of one user (transports/crowd.py) reconnect each on its own.
        run = start_locust(f"http://127.0.0.1:{proxy.port}", user_class, users, 8, tmp_path, "--reconnect-max", "0.5",
                           "--held-per-user", str(per_user))
        assert proxy.wait_for_connections(5, timeout=20)
        assert proxy.cut_all() == 5
        assert proxy.wait_for_connections(10, timeout=20)  # every user came back
        totals = finish(run, tmp_path)[transport]
    finally:
        proxy.close()
    assert totals["connects"] >= 10
    assert totals["errors"] >= 5  # each cut stream is reported once
    # Last-Event-ID (SSE) and since= (WebSocket) replay what was published while disconnected.
    assert totals.get("lost", 0) == 0
    assert totals.get("duplicated", 0) == 0
    assert totals["delivered"] >= 5 * 20 * 5
