"""Tests for rtcap.reports.units: the number formats and value helpers every report module shares."""

from __future__ import annotations

import ast
import math
import subprocess
import sys
from pathlib import Path

import pytest

from rtcap.reports import units

REPORTS = Path(__file__).resolve().parents[2] / "reports"


@pytest.mark.parametrize(("value", "text"), [
    (852, "852 B"), (68 * 1024, "68.0 KiB"), (282 * 1024 + 512, "282.5 KiB"), (3 * 2**20, "3.0 MiB"),
    (None, "–"), (float("nan"), "–")])
def test_fmt_bytes(value: float | None, text: str) -> None:
    assert units.fmt_bytes(value) == text


def test_the_byte_formats_differ_only_where_they_say() -> None:
    # The planner's sizes reach TiB; below it both binary formats agree.
    for x in (0, 852, 68 * 1024, 3 * 2**20, 5 * 2**30, 1023 * 2**30):
        assert units.fmt_bytes_to_tib(x) == units.fmt_bytes(x)
    assert units.fmt_bytes(2 * 2**40) == "2,048.0 GiB"
    assert units.fmt_bytes_to_tib(2 * 2**40) == "2.0 TiB"
    # Traffic is billed in decimal units.
    assert units.fmt_bytes_decimal(5e11) == "500.0 GB" and units.fmt_bytes_decimal(2.5e12) == "2.5 TB"


@pytest.mark.parametrize(("value", "text"), [
    (5.83, "5.8 ms"), (200, "200 ms"), (5000, "5.00 s"), (None, "–")])
def test_fmt_ms(value: float | None, text: str) -> None:
    assert units.fmt_ms(value) == text


def test_fmt_num() -> None:
    assert units.fmt_num(1234.5, 1) == "1,234.5"
    assert units.fmt_num(None) == "–" and units.fmt_num(float("nan")) == "–"
    assert units.fmt_num(20480, 1, 1024) == "20.0"
    assert units.fmt_kib(20480) == "20.0"


def test_the_planners_whole_numbers_say_no_limit() -> None:
    assert units.fmt_int_or_no_limit(1234.4) == units.fmt_num(1234.4) == "1,234"
    assert units.fmt_int_or_no_limit(None) == units.fmt_int_or_no_limit(math.inf) == "no limit"
    assert units.fmt_num(None) == units.fmt_num(math.inf) == "–"


def test_rates_times_and_cores() -> None:
    assert [units.fmt_update_rate(x) for x in (1, 0.2, 0.1, 0.05, None)] == ["1/s", "0.2/s", "0.1/s", "3/min", "–"]
    assert [units.fmt_bitrate(x) for x in (1.25e6, 2.5e8)] == ["10.0 Mbit/s", "2.00 Gbit/s"]
    assert [units.fmt_seconds(x) for x in (1, 2.5, 0.5, None)] == ["1 s", "2.5 s", "500 ms", "–"]
    assert [units.fmt_ratio(x) for x in (math.inf, 25, 308.4, 1.254, 0.123, None)] == [
        "∞", "25.0", "308", "1.25", "0.12", "–"]
    assert [units.fmt_pct(x) for x in (0.01, 0.005, None)] == ["1%", "0.5%", "–"]
    assert [units.fmt_cores(x) for x in (0.125, 12.34)] == ["0.12", "12.3"]


def test_value_helpers() -> None:
    assert units.finite("2.5") == 2.5
    assert units.finite(float("nan")) is None and units.finite(math.inf) is None and units.finite("x") is None
    assert units.nan_to_none({"a": [1.0, math.nan, (math.inf, "x")], "b": None}) == {
        "a": [1.0, None, [None, "x"]], "b": None}
    assert units.inf_to_none(math.inf) is None and units.inf_to_none(3.0) == 3.0


def test_transport_names_and_order() -> None:
    assert units.ordered_transports(["ws", "custom", "sse", "chat", "poll", "longpoll", "state"]) == [
        "state", "poll", "longpoll", "sse", "ws", "chat", "custom"]
    assert [units.transport_name(t) for t in ("state", "poll", "longpoll", "sse", "ws", "chat", "x")] == [
        "Full-state polling", "Delta polling", "Long polling", "SSE", "WebSocket", "WebSocket chat", "x"]
    assert units.throughput_kind("poll") == "poll" and units.throughput_kind("sse") == "push"
    assert units.throughput_kind("custom") == "push"


def test_units_imports_no_pandas_or_plotly() -> None:
    code = ("import sys, rtcap.reports.units; "
            "print(sorted(m for m in ('pandas', 'numpy', 'plotly', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_no_module_takes_a_format_from_figures_wire_or_page() -> None:
    # units.py is the one home of the formats: importing them through a module that happens to use them
    # (figure code, the wire table, HTML helpers) would make the planner import plotly again.
    tree = ast.parse((REPORTS / "units.py").read_text(encoding="utf-8"))
    shared = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    shared |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    assert {"finite", "fmt_num", "fmt_bytes", "KIB", "MIB", "transport_name", "throughput_kind"} <= shared
    borrowed = []
    for path in sorted(REPORTS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module in (
                    "rtcap.reports.figures", "rtcap.reports.wire", "rtcap.reports.page"):
                borrowed += [f"{path.name}: {node.module}.{a.name}" for a in node.names if a.name in shared]
    assert borrowed == []
