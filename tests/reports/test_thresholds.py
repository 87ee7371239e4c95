"""Threshold expressions: parsed strictly with a pointer at the mistake, evaluated against run figures."""

from __future__ import annotations

import pandas as pd
import pytest

from rtcap.reports.thresholds import ThresholdError, evaluate, parse_threshold, parse_thresholds


def test_units_become_base_units() -> None:
    assert parse_threshold("sse.delivery.p99<250ms").limit == 250.0
    assert parse_threshold("sse.delivery.p99 < 0.25 s").limit == 250.0
    assert parse_threshold("ws.errors<0.1%").limit == pytest.approx(0.001)
    assert parse_threshold("ws.errors<0.1%").percent
    assert parse_threshold("ws.errors<5").limit == 5 and not parse_threshold("ws.errors<5").percent
    assert parse_threshold("sse.mem_per_conn<32KiB").limit == 32 * 1024
    t = parse_threshold("poll.rps>=500")
    assert (t.transport, t.metric, t.op, t.limit) == ("poll", "rps", ">=", 500.0)


@pytest.mark.parametrize(("text", "message", "caret"), [
    ("sse.delivery.p99 250ms", "no comparison", 22),
    ("sse.latency<250ms", "unknown metric 'latency'", 4),
    ("sse.delivery.p99<250", "time unit", 20),
    ("sse.mem_per_conn<32", "size needs a unit", 19),
    ("poll.rps>=500ms", "plain number", 13),
    ("errors<1%", "name a transport", 0),
    ("ws.errors<abc", "expected a number", 10),
])
def test_bad_expressions_point_at_the_mistake(text: str, message: str, caret: int) -> None:
    with pytest.raises(ThresholdError, match=message) as error:
        parse_threshold(text)
    lines = str(error.value).splitlines()
    assert lines[1].strip() == text and lines[2].index("^") - 2 == caret


def test_all_bad_expressions_are_reported_together() -> None:
    with pytest.raises(ThresholdError) as error:
        parse_thresholds(["sse.delivery.p99<1ms", "x.y<", "sse.nope<1"])
    assert "expected a number" in str(error.value) and "unknown metric" in str(error.value)


def run_figures() -> tuple[dict, pd.DataFrame]:
    steps = pd.DataFrame([
        {"transport": "sse", "valid": True, "latency_p99_ms": 80.0, "error_rate": 0.0, "delivered": 1000},
        {"transport": "sse", "valid": True, "latency_p99_ms": 240.0, "error_rate": 0.002, "delivered": 1000},
        {"transport": "sse", "valid": False, "latency_p99_ms": 5000.0, "error_rate": 0.5, "delivered": 1000},
        {"transport": "poll", "valid": True, "latency_p99_ms": 990.0, "error_rate": 0.0, "delivered": 500},
    ])
    summary = {"transports": {
        "sse": {"mem_per_conn_bytes": 35000.0, "lost": 3, "rps": 0.0, "capacity_at_slo": 600},
        "poll": {"mem_per_conn_bytes": None, "lost": 0, "rps": 600.0, "capacity_at_slo": 600},
    }}
    return summary, steps


def test_evaluation_uses_the_worst_valid_step_and_the_summary() -> None:
    summary, steps = run_figures()
    texts = ["sse.delivery.p99<250ms", "sse.delivery.p99<200ms", "sse.errors<0.1%", "sse.errors<0.5%",
             "sse.mem_per_conn<32KiB", "sse.mem_per_conn<=35000B", "sse.lost<0.1%", "poll.rps>=500",
             "sse.capacity>=600", "poll.mem_per_conn<32KiB", "ws.errors<1"]
    outcomes = {o.threshold.text: o for o in evaluate(parse_thresholds(texts), summary, steps)}
    verdicts = {text: outcome.ok for text, outcome in outcomes.items()}
    assert verdicts == {
        "sse.delivery.p99<250ms": True,   # 240 ms; the invalid step's 5000 ms does not count
        "sse.delivery.p99<200ms": False,
        "sse.errors<0.1%": False,         # worst valid step 0.2%
        "sse.errors<0.5%": True,
        "sse.mem_per_conn<32KiB": False,  # 35000 B > 32768 B
        "sse.mem_per_conn<=35000B": True,
        "sse.lost<0.1%": False,           # 3 of 3000 delivered is 0.1%: not strictly below
        "poll.rps>=500": True,
        "sse.capacity>=600": True,
        "poll.mem_per_conn<32KiB": False,  # unavailable: a threshold that cannot be checked fails
        "ws.errors<1": False,
    }
    assert outcomes["sse.delivery.p99<250ms"].observed == 240.0
    assert "unavailable" in outcomes["poll.mem_per_conn<32KiB"].detail
    assert "no 'ws'" in outcomes["ws.errors<1"].detail


def test_only_misses_no_later_data_can_mend_are_final() -> None:
    from rtcap.reports.thresholds import final_once_missed

    def final(text: str, per_step: bool) -> bool:
        return final_once_missed(parse_threshold(text), per_step)

    assert final("sse.lost<1", per_step=False) and final("ws.errors<=3", per_step=False)
    assert not final("sse.lost<0.1%", per_step=False)  # a share of deliveries can fall again
    assert not final("sse.delivery.p99<250ms", per_step=False) and final("sse.delivery.p99<250ms", per_step=True)
    assert final("ws.errors<1%", per_step=True) and not final("ws.errors<1%", per_step=False)
    assert not final("poll.rps>=500", per_step=True) and not final("sse.mem_per_conn<32KiB", per_step=True)
    assert not final("sse.lost==0", per_step=True)


def test_doomed_lists_the_final_misses_only() -> None:
    from rtcap.reports.thresholds import doomed

    summary = {"transports": {"sse": {"lost": 2, "errors": 0}}}
    steps = pd.DataFrame([{"transport": "sse", "valid": True, "latency_p99_ms": 300.0, "error_rate": 0.0}])
    thresholds = [parse_threshold(t) for t in ("sse.lost<1", "sse.errors<1", "sse.delivery.p99<250ms", "ws.lost<1")]
    assert [o.threshold.text for o in doomed(thresholds, summary, steps, per_step=False)] == ["sse.lost<1"]
    assert [o.threshold.text for o in doomed(thresholds, summary, steps, per_step=True)] == \
        ["sse.lost<1", "sse.delivery.p99<250ms"]
