"""`rtcap run --scenario NAME`: one preset per claim of the articles rtcap started from, measured instead of believed.

A scenario is one or more arms; each arm is an ordinary `rtcap run` (its own run directory, a fresh target per
transport) with the transports, server options and user options the claim needs. The arms go under
`OUT_DIR/NAME/<arm>/`; then reports/claims.py reads them and writes `OUT_DIR/NAME/scenario.json` (the claim,
its source, the measured figures and a verdict in words) and `summary.md`, and the HTML report overlays the
arms. Steps and holds are the scenario's own unless --steps / --hold / --settle are given.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rtcap.loadtests.run.sweep import RunOptions, run_sweep
from rtcap.reports import schema


@dataclass(frozen=True)
class Arm:
    """One run of a scenario: its name, transports, and what differs from the base options."""

    name: str
    transports: tuple[str, ...]
    server_args: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    fault: str | None = None
    """A fault injected while the arm runs: "redis-restart" (loadtests/run/outage.py: the arm's targets use a
    redis-server the scenario owns instead of their own `--broker redis`, stopped mid-step and restarted empty,
    once per transport)."""


FANOUT_TRANSPORTS = ("sse", "ws", "poll")
"""The fan-out scenario's sweep per arm: two push transports, and polling for contrast."""


@dataclass(frozen=True)
class Scenario:
    """A seed article's claim and the runs that test it."""

    name: str
    claim: str
    source: str
    arms: tuple[Arm, ...]
    steps: tuple[int, ...] = (50, 100, 150, 200)
    hold: float = 10.0
    options: dict[str, Any] = field(default_factory=dict)
    duration: str = ""
    """How long the whole scenario takes on 2 cores with its own steps, measured; said when it starts."""


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario(
        "cache-5s", "A 5-second cache reduces load 5x with virtually no perceptible staleness.",
        "seeds/fastapi-guide-websockets-vs-rest.txt (live scores polled every second)",
        (Arm("no-cache", ("state",)), Arm("cache-5s", ("state",), ("--cache-ttl", "5"))),
        options={"poll_interval": 1.0}),
    Scenario(
        "live-scores", "Polling the whole state sent ~80x the overhead of a WebSocket (68 KiB vs 852 B in 5 minutes), "
        "with ~25x the latency (~5,000 vs ~200 ms); the full state was 282 KiB against 426 B of deltas.",
        "seeds/ably-websocket-vs-rest.txt (Google's live scores: whole state every 10 s)",
        (Arm("live-scores", ("state", "poll", "sse", "ws"), ("--state-bytes", "8192", "--buffer", "10")),),
        steps=(20, 40, 60), hold=30.0, options={"poll_interval": 10.0, "rate": 0.2, "payload": 16}),
    Scenario(
        "long-polling", "Polling every N seconds delays each update by N/2 on average and asks whether or not anything "
        "changed; a held (long) poll answers when the update happens, one request per update.",
        "seeds/ably-websocket-vs-rest.txt (why polling costs bandwidth and latency)",
        # One update per 2 s against a poll per second: half the polls find nothing new, a long poll waits for
        # it; 15 s holds give each step several updates.
        (Arm("long-polling", ("poll", "longpoll")),), hold=15.0, options={"poll_interval": 1.0, "rate": 0.5}),
    Scenario(
        "conditional", "Every poll sends full HTTP headers whether or not anything changed; HTTP's own caching "
        "(ETag / If-None-Match, 304 Not Modified) is what REST has and push does not.",
        "seeds/ably-websocket-vs-rest.txt, seeds/websocket-vs-rest-saas.txt",
        (Arm("validators", ("poll", "state"), ("--state-validators", "--state-bytes", "8192")),
         Arm("no-validators", ("poll", "state"), ("--state-validators", "--state-bytes", "8192"),
             options={"conditional_get": False})),
        options={"poll_interval": 1.0, "rate": 0.2}),
    Scenario(
        "signalling", "Signalling (a WebSocket says 'changed', REST fetches) removes polling latency but doubles the "
        "round trips: one WebSocket message to notify, one HTTP request to fetch, for every update.",
        "seeds/ably-websocket-vs-rest.txt (the signalling pattern)",
        (Arm("signalling", ("ws", "signal")),)),
    Scenario(
        "rpc-over-ws", "Request/response over a WebSocket is REST painfully re-implemented: no caching, no status "
        "codes, your own request ids to correlate replies.",
        "seeds/fastapi-guide-websockets-vs-rest.txt (anti-pattern: REST over WebSocket)",
        (Arm("rpc-over-ws", ("rpc", "rest")),), options={"request_rate": 10.0}),
    Scenario(
        "presence", "Typing indicators and presence are many small, frequent client messages fanned out to a room: "
        "the kind of UX that only makes sense with low-latency bidirectional updates.",
        "seeds/fastapi-guide-websockets-vs-rest.txt, seeds/websocket-vs-rest-saas.txt",
        (Arm("room-5", ("presence",), options={"room_size": 5}),
         Arm("room-25", ("presence",), options={"room_size": 25})),
        options={"typing_rate": 1.0}),
    Scenario(
        "fan-out", "Horizontal scaling: REST is trivial (stateless); WebSockets need pub/sub for cross-worker fan-out.",
        "seeds/fastapi-guide-websockets-vs-rest.txt (the side-by-side table, row 'Horizontal scaling')",
        (Arm("w1-memory", FANOUT_TRANSPORTS, ("--workers", "1")),
         Arm("w1-redis", FANOUT_TRANSPORTS, ("--workers", "1", "--broker", "redis")),
         Arm("w2-redis", FANOUT_TRANSPORTS, ("--workers", "2", "--broker", "redis")),
         Arm("w4-redis", FANOUT_TRANSPORTS, ("--workers", "4", "--broker", "redis")),
         # The broker's outage: two workers on a Redis the scenario owns, stopped for 2 s in the second step
         # (a fixed settle, so the outage can be placed inside its measurement window).
         Arm("redis-restart", ("sse", "ws"), ("--workers", "2", "--broker", "redis"), {"hold": 8.0, "settle_max": 0.0},
             fault="redis-restart")),
        steps=(50, 100, 150), hold=5.0, options={"rate": 5.0, "poll_interval": 1.0, "settle_max": 5.0},
        duration="about 7 minutes on 2 cores (5 arms, 14 sweeps of 3 steps)"),
)}
"""Every preset, by name."""


def arm_options(scenario: Scenario, arm: Arm, base: RunOptions, steps: list[int] | None, hold: float | None,
                settle: float | None) -> RunOptions:
    """The run options of one arm: the base options, the scenario's and the arm's, then explicit overrides."""
    chosen = {**scenario.options, **arm.options}
    hold = hold if hold is not None else chosen.pop("hold", scenario.hold)
    chosen.pop("hold", None)
    settle = settle if settle is not None else min(2.0, hold / 3)
    return replace(base, name=arm.name, out_dir=base.out_dir / base.name, transports=list(arm.transports),
                   steps=list(steps or scenario.steps), hold=hold, settle=settle,
                   server_args=[*base.server_args, *arm.server_args], **chosen)


def run_arm(arm: Arm, options: RunOptions, say: Callable[[str], None]) -> Path:
    """One arm's run; with a fault, the fault is injected while it runs and its effects noted in the run."""
    if arm.fault is None:
        return run_sweep(options, say)
    if arm.fault != "redis-restart":
        raise ValueError(f"unknown fault {arm.fault!r}")
    from rtcap.loadtests.run.outage import RedisOutage, record_outages

    run_dir = options.out_dir / options.name
    # The outage falls in the second step's measurement window: after its ramp and settle, a second in.
    lead = (options.steps[1] - options.steps[0]) / options.spawn_rate + options.settle + 1.0 \
        if len(options.steps) > 1 else options.settle + 1.0
    with RedisOutage(run_dir, list(options.transports), lead_s=lead) as outage:
        say(f"fault: redis-server {outage.url} is stopped for {outage.down_s:g} s in step 1 of each transport")
        done = run_sweep(replace(options, server_args=[*options.server_args, "--broker", outage.url]), say)
    for effect in record_outages(done):
        say(f"fault: {effect['note']}")
    if options.report:
        from rtcap.reports.html import render_report

        render_report([done], done / schema.REPORT_FILE)  # again: the notes now name the outages
    return done


def run_scenario(scenario: Scenario, base: RunOptions, steps: list[int] | None = None, hold: float | None = None,
                 settle: float | None = None, say: Callable[[str], None] = print) -> Path:
    """Run every arm, then write scenario.json, summary.md and (unless --no-report) the overlaid report."""
    root = base.out_dir / base.name
    if root.exists() and any(root.iterdir()):
        from rtcap.loadtests.run.sweep import RunError

        raise RunError(f"scenario directory {root} already exists and is not empty; choose another --name")
    if scenario.duration:
        say(f"scenario {scenario.name}: {scenario.duration}")
    arms = []
    for arm in scenario.arms:
        say(f"scenario {scenario.name}: arm {arm.name} ({', '.join(arm.transports)}"
            f"{'; server ' + ' '.join(arm.server_args) if arm.server_args else ''}"
            f"{'; fault ' + arm.fault if arm.fault else ''})")
        arms.append(run_arm(arm, arm_options(scenario, arm, base, steps, hold, settle), say))
    from rtcap.reports.claims import judge

    verdict = judge(scenario, arms)
    (root / schema.SCENARIO_FILE).write_text(json.dumps(verdict, indent=2), encoding="utf-8")
    from rtcap.reports.claims import scenario_markdown

    (root / schema.SUMMARY_MD_FILE).write_text(scenario_markdown(verdict, arms), encoding="utf-8")
    if base.report:
        from rtcap.reports.html import render_report

        render_report(arms, root / schema.REPORT_FILE)
    for line in verdict["measured"]:
        say(f"measured: {line}")
    return root
