"""The timeline recorder in one process: the line format, request and generator-lag histograms, and the
master role's merging and writing (late rows included), with real Locust environments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from locust.argument_parser import get_parser
from locust.env import Environment

from rtcap.loadtests.generator import hooks
from rtcap.loadtests.transports import metrics
from rtcap.loadtests.run.collect import merge_seconds
from rtcap.loadtests.generator.recorder import GENERATOR, MASTER, WORKER, TimelineRecorder
from rtcap.loadtests.generator.timeline import decode_histogram, encode_histogram, new_histogram, read_timeline

OLD_KEYS = {"t", "transport", "delivered", "requests", "connects", "errors", "open_connections", "delivery_hist",
            "connect_hist"}


def options(record: Path):
    """Locust's own parsed options, with rtcap's registered, as `locust --rtcap-record DIR` gives them."""
    return get_parser().parse_args(["--rtcap-record", str(record)])


def local_environment(record: Path) -> Environment:
    environment = Environment(parsed_options=options(record))
    environment.create_local_runner()
    hooks.install(environment)
    return environment


def fire(environment: Environment, transport: str, name: str, ms: float, exception: Exception | None = None,
         request_type: str | None = None) -> None:
    environment.events.request.fire(request_type=request_type or transport, name=name, response_time=ms,
                                    response_length=0, exception=exception, context={"transport": transport})


def histogram(values_us: list[int]) -> str:
    h = new_histogram()
    for value in values_us:
        h.record_value(value)
    return encode_histogram(h)


def test_a_local_run_writes_requests_and_generator_lag_per_second(tmp_path: Path) -> None:
    environment = local_environment(tmp_path)
    environment.events.test_start.fire(environment=environment)
    recorder = hooks.recorder_of(environment)
    assert recorder is not None and recorder.role == "local"
    for ms in (10.0, 20.0, 30.0, 40.0):
        fire(environment, "poll", "/poll", ms, request_type="GET")
    fire(environment, "poll", "/poll", 5000.0, exception=ConnectionError("refused"), request_type="GET")
    fire(environment, "poll", metrics.DELIVERY, 250.0)
    fire(environment, "poll", metrics.CONNECT, 3.0)
    for lag_ms in (0.5, 2.0, 80.0):
        metrics.report_generator_lag(lag_ms)
    environment.events.test_stop.fire(environment=environment)

    rows = read_timeline(tmp_path / "timeline.jsonl")
    poll = merge_seconds([r for r in rows if r["transport"] == "poll"])
    requests = sum(r["requests"] for r in poll)
    assert requests == 5 and sum(r["errors"] for r in poll) == 1
    assert sum(r["delivered"] for r in poll) == 1 and sum(r["connects"] for r in poll) == 1
    for row in poll:
        assert OLD_KEYS <= set(row)  # the existing keys stay, request_hist is added
    request = new_histogram()
    for row in poll:
        if row["request_hist"]:
            request.add(decode_histogram(row["request_hist"]))
    # Successful requests only, like connect times: the refused one counts as an error, not as a latency.
    assert request.get_total_count() == 4
    assert request.get_value_at_percentile(50) == pytest.approx(20_000, rel=1e-3)
    assert request.get_max_value() == pytest.approx(40_000, rel=1e-3)

    generator = [r for r in rows if r["transport"] == GENERATOR]
    assert generator and all(set(r) == {"t", "transport", "lag_hist", "lag_samples"} for r in generator)
    lag = new_histogram()
    for row in generator:
        lag.add(decode_histogram(row["lag_hist"]))
        assert decode_histogram(row["lag_hist"]).get_total_count() == row["lag_samples"]
    # At least the three reported here (a lag monitor running in this process may add its own).
    assert sum(r["lag_samples"] for r in generator) >= 3
    assert lag.get_max_value() >= 79_900
    # Once stopped the recorder listens no more.
    metrics.report_generator_lag(1.0)
    assert read_timeline(tmp_path / "timeline.jsonl") == rows


def test_stopped_subscribers_go_to_subscribers_jsonl(tmp_path: Path) -> None:
    environment = local_environment(tmp_path)
    environment.events.test_start.fire(environment=environment)
    metrics.subscriber_closed.fire(transport="sse", summary={"first": 1, "highest": 5, "received": 5, "lost": 0})
    environment.events.test_stop.fire(environment=environment)
    lines = [json.loads(line) for line in (tmp_path / "subscribers.jsonl").read_text().splitlines()]
    assert lines == [{"transport": "sse", "first": 1, "highest": 5, "received": 5, "lost": 0}]


def test_a_worker_recorder_writes_nothing_and_ships_its_rows(tmp_path: Path) -> None:
    environment = Environment()
    recorder = TimelineRecorder(environment, None, role=WORKER)
    fire(environment, "ws", metrics.DELIVERY, 12.0)
    metrics.subscriber_closed.fire(transport="ws", summary={"received": 1})
    payload = recorder.stop()
    assert [r["delivered"] for r in payload["rows"] if r["transport"] == "ws"] == [1]
    assert payload["subscribers"] == [{"transport": "ws", "received": 1}]
    assert recorder.take_outbox() == {"rows": [], "subscribers": []}
    assert not any(tmp_path.iterdir())


def test_the_master_merges_rows_exactly_and_still_accounts_for_late_ones(tmp_path: Path) -> None:
    """Counts add, histograms add; a second written already gets one more line with only the late part."""
    master = TimelineRecorder(Environment(), tmp_path / "timeline.jsonl", role=MASTER, hold_seconds=5)
    a = {"t": 100, "transport": "sse", "delivered": 2, "requests": 0, "connects": 1, "errors": 0,
         "open_connections": 3, "bytes_received": 10, "delivery_hist": histogram([1000, 3000]),
         "connect_hist": histogram([500]), "request_hist": None}
    b = {**a, "delivered": 1, "connects": 0, "open_connections": 4, "bytes_received": 7,
         "delivery_hist": histogram([2000]), "connect_hist": None}
    lag = {"t": 100, "transport": GENERATOR, "lag_hist": histogram([100, 200]), "lag_samples": 2}
    master.receive([a, lag], [{"transport": "sse", "received": 2}])
    master.receive([b, {**lag, "lag_hist": histogram([9000]), "lag_samples": 1}])
    master.flush(before=105)  # not older than the hold yet: nothing written
    assert (tmp_path / "timeline.jsonl").read_text() == ""
    live = {r["transport"]: r for r in master.rows()}
    assert live["sse"]["delivered"] == 3 and live["sse"]["open_connections"] == 7 and live["sse"]["bytes_received"] == 17
    assert decode_histogram(live["sse"]["delivery_hist"]).get_value_at_percentile(50) == pytest.approx(2000, rel=1e-3)
    assert live[GENERATOR]["lag_samples"] == 3
    assert decode_histogram(live[GENERATOR]["lag_hist"]).get_max_value() == pytest.approx(9000, rel=1e-3)

    master.flush(before=106)
    assert len(read_timeline(tmp_path / "timeline.jsonl")) == 2
    late = {**b, "delivered": 5, "delivery_hist": histogram([7000] * 5), "open_connections": 0, "bytes_received": 1}
    master.receive([late])  # a worker more than the hold late
    master.stop()
    master.receive([{**late, "delivered": 1, "delivery_hist": histogram([8000])}])  # after stop: still appended
    lines = read_timeline(tmp_path / "timeline.jsonl")
    assert len(lines) == 4
    merged = {r["transport"]: r for r in merge_seconds(lines)}
    assert merged["sse"]["delivered"] == live["sse"]["delivered"] + 6 == 9
    assert {r["transport"]: r["delivered"] for r in master.rows() if "delivered" in r} == {"sse": 9}
    total = decode_histogram(merged["sse"]["delivery_hist"])
    assert total.get_total_count() == 9 and total.get_max_value() == pytest.approx(8000, rel=1e-3)
    subscribers = (tmp_path / "subscribers.jsonl").read_text().splitlines()
    assert [json.loads(s) for s in subscribers] == [{"transport": "sse", "received": 2}]


def test_a_recorder_needs_a_known_role_and_a_path_to_write(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        TimelineRecorder(Environment(), tmp_path / "t.jsonl", role="observer")
    with pytest.raises(ValueError):
        TimelineRecorder(Environment(), None, role=MASTER)
