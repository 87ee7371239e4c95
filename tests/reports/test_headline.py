"""Headline sentences: one per transport, units on every figure, each figure traced to its steps."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rtcap.reports.content import build_report
from rtcap.reports.headline import Fact, Sentence, transport_sentence
from rtcap.reports.units import fmt_cpu


def by_transport(run_dir: Path) -> dict[str, Sentence]:
    report = build_report([run_dir])
    return {s.transport: s for s in report.sentences[report.runs[0].name]}


def test_sentences_state_the_known_truth(run_dir: Path) -> None:
    s = by_transport(run_dir)
    assert list(s) == ["poll", "sse", "ws", "state"]
    # Truth (conftest): CPU = 5% + users/100 %, so 100 µs per message (1 msg/s per user) and
    # 300 µs per request (one poll per 3 s); wire bytes as WIRE gives them.
    assert s["sse"].text() == (
        "SSE: 1,600 connections at p99 <= 1,000 ms on one process (the next step, 3,200 connections, missed "
        "it: p99 1,500 ms), 20.0 KiB each (95% CI 20.0-20.0), 100 µs CPU per delivered event, 130 B on the "
        "wire per event.")
    assert s["ws"].text() == (
        "WebSocket: 2,400 connections at p99 <= 1,000 ms on one process (the next step, 4,800 connections, "
        "missed it: errors 5%), 8.0 KiB each (95% CI 8.0-8.0), 100 µs CPU per delivered event, 120 B on the "
        "wire per event.")
    assert s["poll"].text() == (
        "Delta polling (every 3 s): 3,200 connections at p99 <= 1,000 ms on one process (a lower bound: the "
        "SLO held at every step), 2.0 KiB each (95% CI 2.0-2.0), 300 µs CPU per request, 990 B on the wire "
        "per request.")
    assert s["state"].text().endswith("7.1 KiB on the wire per request; 53 polls missed their tick (the viewer "
                                      "was still waiting on a slow answer).")


def test_every_figure_names_its_source(run_dir: Path) -> None:
    s = by_transport(run_dir)
    for sentence in s.values():
        facts = sentence.facts()
        assert len(facts) >= 4 and all(f.source for f in facts)
    sources = {f.text: f.source for f in s["sse"].facts()}
    # The saturated step 6 is in none of them; the capacity names the step that decided it.
    assert "step 4 (1,600 users, 1,600 connections, p99 400 ms, errors 0%)" in sources["1,600 connections"]
    assert "steps 0-5 of steps.csv" in sources["20.0 KiB each (95% CI 20.0-20.0)"]
    assert "against messages/s over valid steps 0-5" in sources["100 µs CPU per delivered event"]
    assert "step 5 (3,200 users" in sources["3,200 connections, missed it: p99 1,500 ms"]
    # ws step 3 never settled: the memory fit says it left it out; the CPU fit kept it.
    ws = {f.text.split(" ")[1]: f.source for f in by_transport(run_dir)["ws"].facts()}
    assert "steps 0, 1, 2, 4, 5 of steps.csv" in ws["KiB"]
    assert "steps 0-5" in ws["µs"]
    poll = {f.text: f.source for f in s["poll"].facts()}
    assert poll["every 3 s"].startswith("poll interval: inferred from steps.csv")


def test_sentence_as_dict_keeps_sources() -> None:
    s = Sentence("r", "sse", ["SSE: ", Fact("3 connections", "step 2"), "."])
    assert s.as_dict() == {"run": "r", "transport": "sse", "text": "SSE: 3 connections.",
                           "facts": [{"text": "3 connections", "source": "step 2"}]}


def test_no_valid_step_met_the_slo() -> None:
    steps = pd.DataFrame({"step": [0, 1], "users": [10, 20], "connections": [10.0, 20.0],
                          "latency_p99_ms": [300.0, 900.0], "error_rate": [0.0, 0.0], "valid": [True, True]})
    s = {"capacity_at_slo": None, "capacity_at_slo_users": None, "mem_per_conn_bytes": None}
    text = transport_sentence("sse", s, {"delivery_p99_ms": 250, "error_rate": 0.01}, steps)
    assert text == ("SSE: no valid step met p99 <= 250 ms (the best was step 0 (10 users, 10 connections, "
                    "p99 300 ms, errors 0%)), memory per connection not fitted.")


def test_cpu_units() -> None:
    assert [fmt_cpu(x) for x in (5.0642857e-05, 3.08e-4, 2.5e-5, 1.25e-3, 0.25, None)] == [
        "50.6 µs", "308 µs", "25.0 µs", "1.25 ms", "250 ms", "–"]


def test_a_transport_the_run_never_reached_says_so() -> None:
    text = transport_sentence("ws", {"steps": 0, "capacity_at_slo": None}, {"delivery_p99_ms": 1000, "error_rate": 0.01})
    assert text == "WebSocket: not measured (no step of it in steps.csv; the run's notes say why)."
