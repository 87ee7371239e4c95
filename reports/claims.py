"""A scenario's claim against what its runs measured (`rtcap run --scenario NAME`; loadtests/run/scenarios.py).

Each judge reads the arms' run directories (summary.json and the highest-load valid step of steps.csv, the
step the headline figures come from) and returns the figures and sentences that answer the claim: the
number the article gave next to the number this machine measured. Pure: run directories in, JSON out.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rtcap.reports.deployment import run_rate, step_shares, transport_deployment
from rtcap.reports.plan import run_models
from rtcap.reports.schema import META_FILE, OUTAGES_FILE
from rtcap.reports.page import md_table
from rtcap.reports.rundir import Run, load_run
from rtcap.reports.summary import build_summary, md_text
from rtcap.reports.units import finite, fmt_bytes, nan_to_none, transport_name
from rtcap.reports.wire import wire_numbers


def _summary(run: Run) -> dict[str, Any]:
    if run.summary is None:
        run.summary = build_summary(run.meta, run.steps, run.path / META_FILE)
    return run.summary


def top(run: Run, transport: str) -> pd.Series | None:
    """The highest-load valid step of `transport` in `run` (None when it has none)."""
    rows = run.steps[(run.steps["transport"] == transport) & run.steps["valid"]]
    return None if rows.empty else rows.sort_values(["users", "step"]).iloc[-1]


def figure(run: Run, transport: str, name: str) -> float | None:
    """A summary figure, or a pattern figure, of one transport (None when not measured)."""
    s = (_summary(run).get("transports") or {}).get(transport) or {}
    return finite(s.get(name, (s.get("patterns") or {}).get(name)))


def at_top(run: Run, transport: str, column: str) -> float | None:
    """A steps.csv column at the highest-load valid step."""
    row = top(run, transport)
    return None if row is None or column not in row else finite(row[column])


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


def _x(value: float | None) -> str:
    return "–" if value is None else (f"{value:,.0f}x" if value >= 10 else f"{value:.2g}x")


def _n(value: float | None, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}{unit}"


def _bytes_per(run: Run, transport: str, per: str) -> float | None:
    """Wire bytes (both directions) per request or per delivered event at the highest-load valid step."""
    row = top(run, transport)
    if row is None:
        return None
    count = finite(row["requests" if per == "request" else "delivered"])
    return _ratio(finite(row["bytes_received"] + row["bytes_sent"]), count)


def judge_cache(arms: Mapping[str, Run]) -> dict[str, Any]:
    """cache-5s: how far handler work, requests and CPU fell with the cache, and the staleness it added."""
    plain, cached = arms["no-cache"], arms["cache-5s"]
    t = "state"
    # Without the cache every request runs the handler (the server sends no X-Cache then).
    handler_plain = figure(plain, t, "handler_rps") or at_top(plain, t, "rps")
    handler_cached = figure(cached, t, "handler_rps")
    rps = (at_top(plain, t, "rps"), at_top(cached, t, "rps"))
    cpu = (at_top(plain, t, "cpu_percent"), at_top(cached, t, "cpu_percent"))
    p50 = (at_top(plain, t, "latency_p50_ms"), at_top(cached, t, "latency_p50_ms"))
    p99 = (at_top(plain, t, "latency_p99_ms"), at_top(cached, t, "latency_p99_ms"))
    fell = _ratio(handler_plain, handler_cached)
    added = None if None in p50 else p50[1] - p50[0]
    return {
        "figures": {"handler_rps": [handler_plain, handler_cached], "rps": list(rps), "cpu_percent": list(cpu),
                    "latency_p50_ms": list(p50), "latency_p99_ms": list(p99), "handler_reduction": fell},
        "measured": [
            f"handler runs/s: {_n(handler_plain)} without the cache, {_n(handler_cached, digits=2)} with it "
            + (f"({_x(fell)} fewer; the claim says 5x)" if fell is not None else
               "(no valid step to compare)" if handler_plain is None or handler_cached is None else
               "(the handler did not run inside the measured window: hold each step longer than the TTL)"),
            f"requests/s the server answered: {_n(rps[0])} and {_n(rps[1])}; target CPU {_n(cpu[0], '%')} and "
            f"{_n(cpu[1], '%')} (an in-process cache saves the handler, not the HTTP work)",
            f"staleness (delivery latency) p50 / p99: {_n(p50[0], ' ms', 0)} / {_n(p99[0], ' ms', 0)} without, "
            f"{_n(p50[1], ' ms', 0)} / {_n(p99[1], ' ms', 0)} with the cache ({_n(added, ' ms', 0)} more at p50)",
        ],
    }


def judge_live_scores(arms: Mapping[str, Run]) -> dict[str, Any]:
    """live-scores: Ably's table measured: overhead, latency and data per client per 5 minutes."""
    run = next(iter(arms.values()))
    numbers = wire_numbers(run.steps).set_index("transport")

    def value(transport: str, column: str) -> float | None:
        return finite(numbers[column].get(transport)) if transport in numbers.index else None

    over = {t: value(t, "overhead_per_client_5min") for t in ("state", "poll", "sse", "ws")}
    lat = {t: value(t, "latency_mean_ms") for t in ("state", "poll", "sse", "ws")}
    data = {t: value(t, "payload_per_client_5min") for t in ("state", "poll", "ws")}
    return {
        "figures": {"overhead_per_client_5min": over, "latency_mean_ms": lat, "payload_per_client_5min": data},
        "measured": [
            f"overhead per client per 5 minutes: full-state polling {fmt_bytes(over['state'])}, delta polling "
            f"{fmt_bytes(over['poll'])}, SSE {fmt_bytes(over['sse'])}, WebSocket {fmt_bytes(over['ws'])} "
            f"(full-state polling / WebSocket = {_x(_ratio(over['state'], over['ws']))}; Ably: 80x)",
            f"mean latency: full-state polling {_n(lat['state'], ' ms', 0)}, WebSocket {_n(lat['ws'], ' ms', 1)} "
            f"({_x(_ratio(lat['state'], lat['ws']))}; Ably: ~25x)",
            f"data from the server per client per 5 minutes: whole state {fmt_bytes(data['state'])}, deltas "
            f"{fmt_bytes(data['poll'])} polled and {fmt_bytes(data['ws'])} pushed "
            f"({_x(_ratio(data['state'], data['ws']))}; Ably: 282 KiB vs 426 B)",
        ],
    }


def judge_long_polling(arms: Mapping[str, Run]) -> dict[str, Any]:
    """long-polling: latency and requests of interval polling against held polls."""
    run = next(iter(arms.values()))
    out = {t: {c: at_top(run, t, c) for c in ("rps", "msgs_per_s", "latency_p50_ms", "latency_p99_ms", "cpu_percent",
                                              "users")}
           for t in ("poll", "longpoll")}
    # Each poll brings at most the news since the last one: deliveries per request bound the useful polls.
    useful = _ratio(out["poll"]["msgs_per_s"], out["poll"]["rps"])
    interval = finite((run.meta.get("options") or {}).get("poll_interval"))
    share = _ratio(out["poll"]["latency_p50_ms"], 1000 * interval) if interval else None
    return {
        "figures": out,
        "measured": [
            f"delivery p50 / p99: polling every {_n(interval, ' s', 0)} "
            f"{_n(out['poll']['latency_p50_ms'], ' ms', 0)} / "
            f"{_n(out['poll']['latency_p99_ms'], ' ms', 0)} (p50 = {_n(share, '', 2)} of the interval; the claim: "
            "half), long polling "
            f"{_n(out['longpoll']['latency_p50_ms'], ' ms', 1)} / {_n(out['longpoll']['latency_p99_ms'], ' ms', 1)}",
            f"requests/s at {_n(out['poll']['users'], '', 0)} viewers: polling {_n(out['poll']['rps'])}, long polling "
            f"{_n(out['longpoll']['rps'])} (one per update); at most {_n(None if useful is None else useful * 100, '%', 0)} "
            f"of the interval polls brought news; target CPU {_n(out['poll']['cpu_percent'], '%')} and "
            f"{_n(out['longpoll']['cpu_percent'], '%')}",
        ],
    }


def judge_conditional(arms: Mapping[str, Run]) -> dict[str, Any]:
    """conditional: the share of polls a 304 answers and the bytes and CPU per poll with and without validators,
    for cursor (delta) polling and for full-state polling."""
    on, off = arms["validators"], arms["no-validators"]
    out: dict[str, Any] = {}
    lines = []
    for t in ("poll", "state"):
        polls = on.steps.loc[on.steps["transport"] == t, "requests"].sum()
        share = _ratio(figure(on, t, "not_modified"), polls)
        per = (_bytes_per(on, t, "request"), _bytes_per(off, t, "request"))
        cpu = (at_top(on, t, "cpu_percent"), at_top(off, t, "cpu_percent"))
        out[t] = {"not_modified_share": share, "bytes_per_request": list(per), "cpu_percent": list(cpu)}
        lines.append(f"{transport_name(t).lower()}: {_n(None if share is None else share * 100, '%', 0)} of the polls "
                     f"answered 304; wire bytes per poll {_n(per[0], ' B', 0)} with validators, {_n(per[1], ' B', 0)} "
                     f"without ({_x(_ratio(per[1], per[0]))}); target CPU {_n(cpu[0], '%')} and {_n(cpu[1], '%')}")
    lines.append("the request and answer heads still cross the wire on every poll, news or not: a 304 saves the "
                 "body, so it pays where the body is large (a whole state), not where a cursor already keeps it empty")
    return {"figures": out, "measured": lines}


def judge_signalling(arms: Mapping[str, Run]) -> dict[str, Any]:
    """signalling: round trips, latency and bytes per update of notice-then-fetch against plain push."""
    run = next(iter(arms.values()))
    trips = figure(run, "signal", "round_trips_per_event")
    lat = {t: (at_top(run, t, "latency_p50_ms"), at_top(run, t, "latency_p99_ms")) for t in ("ws", "signal")}
    per = {t: _bytes_per(run, t, "event") for t in ("ws", "signal")}
    cpu = {t: at_top(run, t, "cpu_percent") for t in ("ws", "signal")}
    return {
        "figures": {"round_trips_per_event": trips, "latency_ms": lat, "bytes_per_event": per, "cpu_percent": cpu},
        "measured": [
            f"exchanges per update: WebSocket push 1 message, signalling 1 notice + {_n(trips, '', 2)} fetch "
            "round trip(s)",
            f"delivery p50 / p99: WebSocket {_n(lat['ws'][0], ' ms')} / {_n(lat['ws'][1], ' ms')}, signalling "
            f"{_n(lat['signal'][0], ' ms')} / {_n(lat['signal'][1], ' ms')} (every client fetches at once)",
            f"wire bytes per update: WebSocket {_n(per['ws'], ' B', 0)}, signalling {_n(per['signal'], ' B', 0)} "
            f"({_x(_ratio(per['signal'], per['ws']))}); target CPU {_n(cpu['ws'], '%')} and {_n(cpu['signal'], '%')}",
        ],
    }


def judge_rpc(arms: Mapping[str, Run]) -> dict[str, Any]:
    """rpc-over-ws: response times, bytes and CPU of the same request over a WebSocket and over REST."""
    run = next(iter(arms.values()))
    out = {t: {c: at_top(run, t, c) for c in ("rps", "latency_p50_ms", "latency_p99_ms", "cpu_percent")}
           for t in ("rpc", "rest")}
    per = {t: _bytes_per(run, t, "request") for t in ("rpc", "rest")}
    return {
        "figures": {**out, "bytes_per_request": per},
        "measured": [
            f"response p50 / p99 at {_n(out['rpc']['rps'], '', 0)} requests/s: over WebSocket "
            f"{_n(out['rpc']['latency_p50_ms'], ' ms', 2)} / {_n(out['rpc']['latency_p99_ms'], ' ms', 2)}, over REST "
            f"keep-alive {_n(out['rest']['latency_p50_ms'], ' ms', 2)} / {_n(out['rest']['latency_p99_ms'], ' ms', 2)}",
            f"wire bytes per request: WebSocket {_n(per['rpc'], ' B', 0)}, REST {_n(per['rest'], ' B', 0)}; target CPU "
            f"{_n(out['rpc']['cpu_percent'], '%')} and {_n(out['rest']['cpu_percent'], '%')}",
            "what the WebSocket version gives up is not a number: status codes, ETag/304 revalidation, caching by "
            "browsers and CDNs, per-request handling in proxies; the REST side answers 304 when nothing changed",
        ],
    }


def judge_presence(arms: Mapping[str, Run]) -> dict[str, Any]:
    """presence: fan-out latency and messages out against room size."""
    rows = {}
    for name, run in arms.items():
        rows[name] = {"room_size": figure(run, "presence", "room_size"), "fanout": figure(run, "presence", "fanout"),
                      "latency_p50_ms": at_top(run, "presence", "latency_p50_ms"),
                      "latency_p99_ms": at_top(run, "presence", "latency_p99_ms"),
                      "msgs_in_per_s": figure(run, "presence", "msgs_in_per_s"),
                      "msgs_out_per_s": figure(run, "presence", "msgs_out_per_s"),
                      "cpu_percent": at_top(run, "presence", "cpu_percent")}
    return {
        "figures": rows,
        "measured": [f"room of {_n(r['room_size'], '', 0)}: each indicator reached {_n(r['fanout'], '', 1)} others "
                     f"with p50 / p99 {_n(r['latency_p50_ms'], ' ms')} / {_n(r['latency_p99_ms'], ' ms')}; "
                     f"{_n(r['msgs_in_per_s'], '', 0)} messages/s in became {_n(r['msgs_out_per_s'], '', 0)} out; "
                     f"target CPU {_n(r['cpu_percent'], '%')}" for r in rows.values()],
    }


FANOUT_ARMS = {"w1-memory": "1 worker, memory broker", "w1-redis": "1 worker through Redis",
               "w2-redis": "2 workers through Redis", "w4-redis": "4 workers through Redis"}
"""The fan-out scenario's sweep arms (loadtests/run/scenarios.py) and their names in sentences."""


def _fanout_arm(run: Run) -> dict[str, Any]:
    """One fan-out arm's figures per transport: top-step latency and throughput, the fits (memory per connection
    of every process summed, CPU per delivered event or request), loss, and the workers' and broker's shares."""
    models = {m["transport"]: m for m in run_models(run)}
    shares = step_shares(run.steps, run.samples, run_rate(run.meta))
    out = {}
    for t in ("sse", "ws", "poll"):
        if t not in models:
            continue
        top_row = {c: at_top(run, t, c) for c in ("users", "latency_p50_ms", "latency_p99_ms", "request_p50_ms",
                                                  "request_p99_ms", "rps", "msgs_per_s", "cpu_percent")}
        work = top_row["rps" if t == "poll" else "msgs_per_s"]
        out[t] = {**top_row, **{c: figure(run, t, c) for c in ("mem_per_conn_bytes", "lost", "duplicated", "reordered")},
                  # Every process's CPU at the top step over its work, idle included: what the deployment costs
                  # per event (or request), steadier than a 3-step slope.
                  "cpu_per_unit_s": _ratio(None if top_row["cpu_percent"] is None else top_row["cpu_percent"] / 100,
                                           work),
                  "cpu_fit_s": models[t]["cpu"].get("per_unit"),
                  "deployment": None if shares.empty else transport_deployment(shares, t)}
    return out


def _us(value: float | None) -> str:
    return "–" if value is None else f"{value * 1e6:,.1f} µs"


def _outages(run: Run | None) -> list[dict[str, Any]]:
    """The outages injected into an arm with their effects and note (loadtests/run/outage.py wrote them)."""
    path = None if run is None else run.path / OUTAGES_FILE
    if path is None or not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def judge_fanout(arms: Mapping[str, Run]) -> dict[str, Any]:
    """fan-out: what the broker hop adds (latency, CPU, memory), how connections balanced over workers, what
    Redis carried, polling across the same workers, and what a Redis restart cost the subscribers."""
    figures = {name: _fanout_arm(arms[name]) for name in FANOUT_ARMS if name in arms}

    def get(arm: str, t: str, key: str) -> Any:
        return ((figures.get(arm) or {}).get(t) or {}).get(key)

    def dep(arm: str, t: str, key: str) -> Any:
        return (get(arm, t, "deployment") or {}).get(key)

    lines = []
    for t in ("sse", "ws"):
        hop = [None if None in (get("w1-redis", t, c), get("w1-memory", t, c)) else
               get("w1-redis", t, c) - get("w1-memory", t, c) for c in ("latency_p50_ms", "latency_p99_ms")]
        lines.append(
            f"{transport_name(t)} at {_n(get('w1-memory', t, 'users'), '', 0)} connections, delivery p50 / p99: "
            + "; ".join(f"{words} {_n(get(a, t, 'latency_p50_ms'))} / {_n(get(a, t, 'latency_p99_ms'))} ms"
                        for a, words in FANOUT_ARMS.items() if a in figures)
            + f" (the broker hop adds {_n(hop[0])} / {_n(hop[1])} ms); CPU per delivered event (every process, idle "
            "included): "
            + ", ".join(_us(get(a, t, "cpu_per_unit_s")) for a in FANOUT_ARMS if a in figures)
            + "; memory per connection (workers + broker): "
            + ", ".join(fmt_bytes(get(a, t, "mem_per_conn_bytes")) for a in FANOUT_ARMS if a in figures)
            + "; lost / duplicated / reordered across workers: "
            + ", ".join(f"{_n(get(a, t, 'lost'), '', 0)}/{_n(get(a, t, 'duplicated'), '', 0)}/"
                        f"{_n(get(a, t, 'reordered'), '', 0)}" for a in FANOUT_ARMS if a in figures))
    balance = [f"{dep(a, t, 'workers')} workers ({transport_name(t)}) most / mean {_n(dep(a, t, 'conns_imbalance'), '', 2)}"
               for a in ("w2-redis", "w4-redis") for t in ("sse", "ws") if dep(a, t, "workers")]
    if balance:
        lines.append("connections per worker (SO_REUSEPORT spreads them by hash): " + "; ".join(balance))
    broker = [f"{dep(a, t, 'workers')} worker(s) {transport_name(t)}: {_n(dep(a, t, 'broker_msgs_per_s'), '', 0)} msgs/s, "
              f"CPU {_n(dep(a, t, 'broker_cpu_percent'), '%')}, RSS {fmt_bytes(dep(a, t, 'broker_rss_bytes'))}, "
              f"{_us(dep(a, t, 'broker_cpu_per_msg'))} per message"
              for a in ("w1-redis", "w4-redis") for t in ("sse", "poll") if dep(a, t, "workers")]
    if broker:
        lines.append("Redis (events x (1 + workers) + requests through it): " + "; ".join(broker))
    lines.append(
        f"polling, {_n(get('w1-memory', 'poll', 'users'), '', 0)} viewers every second: "
        + ", ".join(f"{words} {_n(get(a, 'poll', 'rps'), ' req/s', 0)} at {_us(get(a, 'poll', 'cpu_per_unit_s'))} CPU "
                    f"per request, response p99 {_n(get(a, 'poll', 'request_p99_ms'), ' ms')}"
                    for a, words in FANOUT_ARMS.items() if a in figures)
        + "; any worker answers a poll, and here each poll also syncs through Redis (one round trip)")
    outages = _outages(arms.get("redis-restart"))
    lines += [f"Redis restart: {outage.get('note') or outage}" for outage in outages]
    lines.append(_fanout_verdict(figures, outages))
    return {"figures": {**figures, "outages": outages}, "measured": lines}


def _fanout_verdict(figures: Mapping[str, Any], outages: Sequence[Mapping[str, Any]]) -> str:
    """The seed's two sentences against the figures: pub/sub needed and what it cost; polling's contrast."""
    def get(arm: str, t: str, key: str) -> Any:
        return ((figures.get(arm) or {}).get(t) or {}).get(key)

    spread = [a for a in ("w2-redis", "w4-redis") if a in figures]
    faults = sum((get(a, t, k) or 0) for a in spread for t in ("sse", "ws") for k in ("lost", "duplicated", "reordered"))
    cpu = [get(a, "sse", "cpu_per_unit_s") for a in ("w1-memory", "w4-redis")]
    lost = sum(o.get("lost") or 0 for o in outages)
    resumed = max((o["resume_within_s"] for o in outages if o.get("resume_within_s") is not None), default=None)
    p99 = [get(a, "sse", "latency_p99_ms") for a in ("w1-memory", "w4-redis")]
    return (f"verdict: pub/sub is what makes cross-worker push work: through Redis every subscriber on the "
            f"{' and '.join(spread) or 'no'} arm(s) got each event once ({faults:g} lost, duplicated or reordered); "
            f"SSE's CPU per delivered event (every process) {_us(cpu[0])} on one process, {_us(cpu[1])} on 4 workers "
            f"through Redis, delivery p99 {_n(p99[0], ' ms')} and {_n(p99[1], ' ms')}; polling needs no fan-out (any "
            "worker answers a poll), so it scales by adding workers, though this server still asks Redis once per "
            "poll for the shared state"
            + (f"; a Redis restart paused delivery (resumed within {_n(resumed, ' s')}) without crashing anything, "
               f"{lost} events lost" if outages else ""))


JUDGES: dict[str, Callable[[Mapping[str, Run]], dict[str, Any]]] = {
    "cache-5s": judge_cache, "live-scores": judge_live_scores, "long-polling": judge_long_polling,
    "conditional": judge_conditional, "signalling": judge_signalling, "rpc-over-ws": judge_rpc,
    "presence": judge_presence, "fan-out": judge_fanout,
}
"""The judge of each scenario (loadtests/run/scenarios.py SCENARIOS), by name."""


def judge(scenario: Any, arm_dirs: Sequence[Path]) -> dict[str, Any]:
    """The scenario's claim, source and command, and what its arms measured."""
    arms = {arm.name: load_run(path) for arm, path in zip(scenario.arms, arm_dirs)}
    verdict = JUDGES[scenario.name](arms)
    return nan_to_none({"scenario": scenario.name, "claim": scenario.claim, "source": scenario.source,
                        "arms": {a.name: {"transports": list(a.transports), "server_args": list(a.server_args),
                                          "options": a.options, "run_dir": str(p)}
                                 for a, p in zip(scenario.arms, arm_dirs)},
                        **verdict})


def scenario_markdown(verdict: Mapping[str, Any], arm_dirs: Sequence[Path]) -> str:
    """The claim and the measured lines, then each arm's transports, as markdown (a CI job summary)."""
    arms = pd.DataFrame([{"arm": name, "transports": ", ".join(transport_name(t) for t in a["transports"]),
                          "server options": " ".join(a["server_args"]) or "–",
                          "run directory": a["run_dir"]} for name, a in verdict["arms"].items()])
    return "\n".join([f"## rtcap scenario: {md_text(verdict['scenario'])}", "", f"> {md_text(verdict['claim'])}", "",
                      f"Source: {md_text(verdict['source'])}", "", "Measured on this machine:", "",
                      *[f"- {md_text(line)}" for line in verdict["measured"]], "", md_table(arms), ""])
