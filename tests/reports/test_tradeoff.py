"""Connections vs requests: costs and break-even from the measured model (hand-computed), and what is missing."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from rtcap.reports.content import build_report
from rtcap.reports.tradeoff import break_even_bytes, break_even_cpu, costs, tradeoff, tradeoff_figure
from tests.reports.conftest import meta_for, truth_steps


def side(transport: str, kind: str, k: float, b: float, slope: float = 10_000.0, k_ci: float = 0.0,
         split: tuple[float, float] | None = None) -> dict[str, Any]:
    """Hand-made params of one transport: CPU k core-s and b wire bytes per unit, memory slope."""
    return {"transport": transport, "name": transport.upper(), "kind": kind,
            "unit": "request" if kind == "polling" else "message",
            "cpu": {"per_unit": k, "per_unit_lo": k - k_ci, "per_unit_hi": k + k_ci},
            "memory": {"slope": slope}, "bandwidth": {"per_unit": b, "per_step": [b]},
            "bytes_split": None if split is None else {"overhead_per_request": split[0], "payload_per_event": split[1],
                                                       "per_step": [list(split)]},
            "model": {"slo_steps": [[500, 20.0, 500]]}}


def test_break_even_follows_the_numbers() -> None:
    poll = side("poll", "polling", 2e-4, 800.0, k_ci=5e-5)
    push = side("sse", "push", 5e-5, 100.0, k_ci=1e-5)
    cpu = break_even_cpu(poll, push)
    # Polling costs k_req / X, push u * k_msg: equal at u X = k_req / k_msg = 4 updates per interval.
    assert cpu["per_interval"] == pytest.approx(4.0)
    assert cpu["lo"] == pytest.approx(1.5e-4 / 6e-5) and cpu["hi"] == pytest.approx(2.5e-4 / 4e-5)
    assert break_even_bytes(poll, push)["per_interval"] == pytest.approx(8.0)
    # Delta polling that counted payload: 700 B overhead per request + 60 B per event vs 100 B per message.
    delta = side("poll", "polling", 2e-4, 800.0, split=(700.0, 60.0))
    assert break_even_bytes(delta, push)["per_interval"] == pytest.approx(700 / 40)
    # Push never costs more bytes when its message is no bigger than the payload polling carries anyway.
    fat_payload = side("poll", "polling", 2e-4, 800.0, split=(700.0, 120.0))
    assert break_even_bytes(fat_payload, push)["per_interval"] == math.inf
    # The ends: a request that costs no CPU is never beaten; a message that costs none always wins.
    assert break_even_cpu(side("poll", "polling", 0.0, 800.0), push)["per_interval"] == 0.0
    assert break_even_cpu(poll, side("sse", "push", 0.0, 100.0))["per_interval"] == math.inf


def test_costs_for_the_same_viewers_and_freshness() -> None:
    poll = side("poll", "polling", 2e-4, 800.0, slope=2048.0)
    push = side("sse", "push", 5e-5, 100.0, slope=20480.0)
    c = costs(poll, 1000, 2.0, 0.5)
    assert c["work_per_s"] == 500 and c["cpu_cores"] == pytest.approx(0.1)
    assert c["memory_bytes"] == 2048 * 1000 and c["wire_bytes_per_s"] == 500 * 800
    c = costs(push, 1000, 2.0, 0.5)
    assert c["work_per_s"] == 500 and c["cpu_cores"] == pytest.approx(0.025) and c["wire_bytes_per_s"] == 50_000


def test_sentence_says_which_way_it_goes() -> None:
    params = {"poll": side("poll", "polling", 2e-4, 800.0, k_ci=5e-5), "sse": side("sse", "push", 5e-5, 100.0)}
    tr = tradeoff("r", params, (2.0, "meta"), (1.0, "meta"))
    assert tr["viewers"] == 500 and not tr["missing"]
    assert tr["sentence"] == (
        "Against poll every 2 s, push is cheaper while updates arrive less often than this many times per poll "
        "interval: SSE below 4.00 in CPU (95% CI 3.00-5.00) and below 8.00 in bytes; at this run's 2.00 per "
        "interval (1/s), push is cheaper: SSE in both.")
    tr = tradeoff("r", params, (2.0, "meta"), (3.0, "meta"))  # 6 updates per interval: CPU now favours polling
    assert tr["sentence"].endswith("at this run's 6.00 per interval (3/s), push is cheaper: SSE in bytes only.")


def test_fixture_run(run_dir: Path) -> None:
    report = build_report([run_dir])
    tr = report.tradeoffs["baseline"]
    # No poll interval in meta.json: 10 polls per user per 30 s window -> 3 s; target.rate 1/s.
    assert tr["poll_interval_s"] == pytest.approx(3.0) and tr["update_rate_per_s"] == 1.0
    assert tr["viewers"] == 1600  # the most users every transport held at a valid step (state: 1,600)
    be = {(b["polling"], b["push"]): b for b in tr["break_even"]}
    assert set(be) == {("poll", "sse"), ("poll", "ws"), ("state", "sse"), ("state", "ws")}
    assert be["poll", "sse"]["cpu"]["per_interval"] == pytest.approx(3.0)  # 300 µs / 100 µs
    # Delta polling counted payload: 690 B overhead per request, 100 B payload per event; SSE 130 B per event.
    assert be["poll", "sse"]["bytes"]["per_interval"] == pytest.approx(690 / 30)
    assert be["poll", "ws"]["bytes"]["per_interval"] == pytest.approx(690 / 20)
    # Full-state polling sends the whole state every time: 7,290 B per request against 130 B per event.
    assert be["state", "sse"]["bytes"]["per_interval"] == pytest.approx(7290 / 130)
    assert be["poll", "sse"]["memory_difference_bytes"] == pytest.approx(1600 * (20480 - 2048), rel=1e-3)
    json.dumps(tr, allow_nan=False)  # strict JSON as exported
    fig = tradeoff_figure(tr, report.params["baseline"])
    costs_traces = [t for t in fig.data if (t.meta or {}).get("kind") == "cost"]
    assert len(costs_traces) == 8  # four transports, CPU and bytes
    marks = [t for t in fig.data if (t.meta or {}).get("kind") == "break-even"]
    sse_bytes = next(t for t in marks if t.meta["push"] == "sse" and t.meta["polling"] == "poll"
                     and t.meta["what"] == "bytes")
    assert sse_bytes.x[0] == pytest.approx(23 / 3)  # updates per second where the lines cross
    assert fig.layout.xaxis.type == "log"


def test_missing_polling_or_push(make_run: Any) -> None:
    steps = truth_steps()
    push_only = make_run("push", steps[steps["transport"].isin(["sse", "ws"])])
    tr = build_report([push_only]).tradeoffs["push"]
    assert tr["missing"] and tr["break_even"] == []
    assert tr["sentence"] == ("Nothing to weigh: this run has no polling transport (poll or state): nothing to "
                              "weigh push against; add poll to --transports.")
    meta = meta_for("poll", ["poll"])
    meta["options"] = {"poll_interval": 2.5}
    poll_only = make_run("poll", steps[steps["transport"] == "poll"], meta=meta)
    tr = build_report([poll_only]).tradeoffs["poll"]
    assert "no push transport (sse or ws)" in tr["sentence"]
    assert tr["poll_interval_s"] == 2.5 and tr["poll_interval_source"] == "meta.json options.poll_interval"
