"""A deployment's shares from samples.csv: per role, per step; a one-process run has none (and still reports)."""

from __future__ import annotations

import pandas as pd

from rtcap.reports.deployment import is_deployment, member_frame, step_shares, transport_deployment
from rtcap.reports.figures import shares_figure


def samples() -> pd.DataFrame:
    """Two ticks of one measured step: the summed row, a supervisor, two workers (3 and 5 clients), a broker."""
    rows = []
    for t in (100.0, 100.5):
        rows += [
            {"t": t, "transport": "sse", "role": "target", "pid": 1, "rss_bytes": 170, "cpu_percent": 31.0,
             "tcp_established": 8, "step": 0, "phase": "measure"},
            {"t": t, "transport": "sse", "role": "target:supervisor", "pid": 1, "rss_bytes": 40, "cpu_percent": 0.0,
             "tcp_established": 0, "step": 0, "phase": "measure"},
            {"t": t, "transport": "sse", "role": "target:worker", "pid": 2, "rss_bytes": 50, "cpu_percent": 10.0,
             "tcp_established": 3, "step": 0, "phase": "measure"},
            {"t": t, "transport": "sse", "role": "target:worker", "pid": 3, "rss_bytes": 60, "cpu_percent": 20.0,
             "tcp_established": 5, "step": 0, "phase": "measure"},
            {"t": t, "transport": "sse", "role": "target:broker", "pid": 4, "rss_bytes": 20, "cpu_percent": 1.0,
             "tcp_established": 0, "step": 0, "phase": "measure"},
        ]
    return pd.DataFrame(rows)


def test_member_shares_sum_per_role_and_connections_per_worker() -> None:
    frame = member_frame(samples()).set_index("member")
    assert frame.loc["worker", "processes"] == 2 and frame.loc["worker", "rss_bytes"] == 110
    assert frame.loc["worker", "cpu_percent"] == 30.0 and frame.loc["worker", "connections"] == 8
    assert (frame.loc["worker", "conns_min"], frame.loc["worker", "conns_max"]) == (3, 5)
    assert frame.loc["broker", "rss_bytes"] == 20
    steps = pd.DataFrame([{"transport": "sse", "step": 0, "users": 8, "connections": 8, "duration_s": 4.0,
                           "rps": 0.0, "msgs_per_s": 40.0, "published": None, "rss_bytes": 170,
                           "cpu_percent": 31.0, "valid": True}])
    shares = step_shares(steps, samples(), rate=5.0)
    row = shares.iloc[0]
    assert row["broker_msgs_per_s"] == 5.0 * (1 + 2)  # each event in once, out to each of 2 workers
    assert row["conns_imbalance"] == 5 / 4
    d = transport_deployment(shares, "sse")
    assert d["workers"] == 2 and d["broker_cpu_per_msg"] == 0.01 / 15.0
    names = {trace.name for trace in shares_figure(samples()).data}
    assert names == {"worker", "broker", "supervisor"}


def test_a_one_process_run_has_no_shares() -> None:
    alone = samples()
    alone = alone[alone["role"] == "target"]
    assert not is_deployment(alone) and member_frame(alone).empty
    assert step_shares(pd.DataFrame(), alone, 1.0).empty
