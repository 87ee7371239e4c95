"""One plain sentence per transport, each figure in it carrying where it came from.

"SSE: 600 connections at p99 <= 1,000 ms on one process (a lower bound: the SLO held at every
step), 34.2 KiB each (95% CI 33.9-34.6), 50.6 µs CPU per delivered event, 149 B on the wire per event."
A sentence is a list of parts: plain glue text, or a Fact whose `source` names the steps (of
steps.csv) or fields (of meta.json / summary.json) behind it; the page shows sources as tooltips
and numbered footnotes, the JSON export keeps them, the markdown export keeps only the text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from rtcap.reports import slo as slo_rule
from rtcap.reports.flags import reasons
from rtcap.reports.params import step_list
from rtcap.reports.units import finite, fmt_bytes, fmt_cpu, fmt_kib, fmt_num, fmt_pct, fmt_seconds, transport_name
from rtcap.targets.transports import get


@dataclass(frozen=True)
class Fact:
    """One figure of a sentence and where it came from."""

    text: str
    source: str


@dataclass
class Sentence:
    """A headline sentence: glue strings and Facts, in order."""

    run: str
    transport: str
    parts: list[str | Fact] = field(default_factory=list)

    def text(self) -> str:
        """The sentence as plain text."""
        return "".join(p.text if isinstance(p, Fact) else p for p in self.parts)

    def facts(self) -> list[Fact]:
        """The figures of the sentence, in order."""
        return [p for p in self.parts if isinstance(p, Fact)]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the text and each figure with its source."""
        return {"run": self.run, "transport": self.transport, "text": self.text(),
                "facts": [{"text": f.text, "source": f.source} for f in self.facts()]}


def _ms(value: Any) -> str:
    """Milliseconds with sensible precision."""
    f = finite(value)
    return fmt_num(f, 0 if f is not None and abs(f) >= 10 else 1)


def _step_words(r: pd.Series) -> str:
    """'step 4 (1,600 users, 1,600 connections, p99 400 ms, errors 0%)'."""
    return (f"step {int(r['step'])} ({fmt_num(r['users'])} users, {fmt_num(r['connections'])} connections, "
            f"p99 {_ms(r['latency_p99_ms'])} ms, errors {fmt_pct(r['error_rate'])})")


def capacity_parts(s: Mapping[str, Any], slo: Mapping[str, Any], steps: pd.DataFrame) -> list[str | Fact]:
    """'N connections at p99 <= X ms on one process (qualifier)', with the steps that decide it."""
    limit = f"p99 <= {fmt_num(slo.get('delivery_p99_ms'))} ms"
    rule = (f"capacity at SLO: the most connections the target held at a valid step with delivery {limit} "
            f"and error rate <= {fmt_pct(slo.get('error_rate'))}")
    valid = steps[steps["valid"].astype(bool)].sort_values(["users", "step"])
    users = s.get("capacity_at_slo_users")
    if users is None:
        if valid.empty:
            return [Fact("no valid step", "every step of this transport in steps.csv is invalid (see warnings)")]
        best = valid.sort_values("latency_p99_ms").iloc[0]
        return ["no valid step met ", Fact(limit, rule + ": none did"), " (the best was ",
                Fact(_step_words(best), "lowest delivery p99 among valid steps, steps.csv"), ")"]
    at = valid[valid["users"] == users]
    where = f"{_step_words(at.iloc[-1])} in steps.csv" if len(at) else "summary.json capacity_at_slo"
    conns = s.get("capacity_at_slo")
    what = (f"{fmt_num(conns)} connections" if conns is not None
            else f"{fmt_num(users)} users (connections not measured)")
    parts: list[str | Fact] = [Fact(what, f"{rule}: {where}"),
                               f" at {limit} on one process"]
    above = valid[valid["users"] > users]
    failed = steps[~steps["valid"].astype(bool) & (steps["users"] > users)].sort_values(["users", "step"])
    if not s.get("capacity_is_lower_bound") and above.empty and len(failed):
        # The target failed above this step (died, froze, erred): the SLO did not hold at every step.
        bad = failed.iloc[0]
        return parts + [" (the next step, ", Fact(f"{fmt_num(bad['users'])} users, did not measure the target: "
                                                  f"{reasons(bad.get('flags'), 'invalid')}",
                                                  f"step {int(bad['step'])} in steps.csv"), ")"]
    if s.get("capacity_is_lower_bound") or above.empty:
        parts += [" (", Fact("a lower bound: the SLO held at every step",
                             "the highest valid step met the SLO, so the limit lies beyond this sweep "
                             "(raise --steps)"), ")"]
        return parts
    nxt = above.iloc[0]
    p99 = finite(nxt["latency_p99_ms"])
    # Say which limit the next step broke: latency first, as the SLO reads.
    why = (f"p99 {_ms(p99)} ms" if p99 is None or p99 > float(slo["delivery_p99_ms"])
           else f"errors {fmt_pct(nxt['error_rate'])}")
    parts += [" (the next step, ", Fact(f"{fmt_num(nxt['connections'])} connections, missed it: {why}",
                                        f"the next valid step above: {_step_words(nxt)} in steps.csv"), ")"]
    return parts


def memory_parts(s: Mapping[str, Any], p: Mapping[str, Any] | None) -> list[str | Fact]:
    """'34.2 KiB each (95% CI 33.9-34.6)' with the fit behind it, or why there is none."""
    slope = finite(s.get("mem_per_conn_bytes"))
    if slope is None:
        why = (p or {}).get("memory", {}).get("why", "no memory fit (see warnings)")
        return [Fact("memory per connection not fitted", why)]
    lo, hi = s.get("mem_per_conn_ci95") or (None, None)
    mem = (p or {}).get("memory") or {}
    steps = step_list(mem["steps"]) if "steps" in mem else f"{s.get('fit_points')} steps"
    source = (f"memory per connection: least-squares slope of the target's RSS against the connections it "
              f"held, over the valid steps whose memory settled ({steps} of steps.csv), R² "
              f"{fmt_num(s.get('mem_per_conn_r2'), 3)}; the intercept, "
              f"{fmt_num(s.get('baseline_rss_bytes'), 1, 2**20)} "
              "MiB, is the idle footprint")
    return [Fact(f"{fmt_kib(slope)} KiB each (95% CI {fmt_kib(lo)}-{fmt_kib(hi)})", source)]


def cpu_parts(p: Mapping[str, Any] | None) -> list[str | Fact]:
    """'50.6 µs CPU per delivered event' with the fit behind it, or why there is none."""
    if p is None:
        return []
    cpu, what = p["cpu"], p["unit_words"]
    if "why" in cpu:
        return [Fact(f"CPU per {what} not measured", cpu["why"])]
    source = (f"CPU per {what}: least-squares slope of the target's CPU (cores) against {cpu['x']} over "
              f"valid {step_list(cpu['steps'])} of steps.csv, 95% CI {fmt_cpu(cpu['per_unit_lo'])} to "
              f"{fmt_cpu(cpu['per_unit_hi'])}, R² {fmt_num(cpu.get('r2'), 3)}; idle intercept "
              f"{fmt_num(cpu['idle_cores'], 3)} cores left out")
    return [Fact(f"{fmt_cpu(cpu['per_unit'])} CPU per {what}", source)]


def bytes_parts(p: Mapping[str, Any] | None) -> list[str | Fact]:
    """'149 B on the wire per event' (or per request) with the steps behind it."""
    if p is None or "why" in p["bandwidth"]:
        return []
    bw, what = p["bandwidth"], "event" if p["unit"] == "message" else "request"
    count = "events delivered" if p["unit"] == "message" else "requests"
    source = (f"wire bytes per {what}: bytes received + sent by every client over the {count}, summed over "
              f"valid {step_list(bw['steps'])} of steps.csv; per step {fmt_bytes(bw['per_unit_lo'])} to "
              f"{fmt_bytes(bw['per_unit_hi'])}")
    return [Fact(f"{fmt_bytes(bw['per_unit'])} on the wire per {what}", source)]


def sentence(run: str, transport: str, s: Mapping[str, Any], slo: Mapping[str, Any], steps: pd.DataFrame,
             p: Mapping[str, Any] | None = None, interval: tuple[float | None, str] | None = None) -> Sentence:
    """The headline sentence of one transport of one run (summary `s`, params `p` when available)."""
    out = Sentence(run, transport)
    name = transport_name(transport)
    record = get(transport)
    if record is not None and record.interval and interval and interval[0]:
        out.parts += [name, " (", Fact(f"every {fmt_seconds(interval[0])}", f"poll interval: {interval[1]}"), "): "]
    else:
        out.parts.append(f"{name}: ")
    if s.get("steps") == 0:
        # e.g. a sweep aborted early before this transport's turn, or stopped by a failure.
        out.parts.append("not measured (no step of it in steps.csv; the run's notes say why).")
        return out
    out.parts += capacity_parts(s, slo_rule.for_transport(slo, transport), steps)
    for extra in (memory_parts(s, p), cpu_parts(p), bytes_parts(p)):
        if extra:
            out.parts += [", ", *extra]
    missed = s.get("missed_ticks")
    if record is not None and record.polled and missed:
        # A missed tick is a poll sent late because the last answer was slow: staleness beyond the interval.
        out.parts += ["; ", Fact(f"{fmt_num(missed)} {'poll missed its' if missed == 1 else 'polls missed their'} "
                                 "tick (the viewer was still waiting on a slow answer)",
                                 "sum of missed_ticks over all steps of steps.csv")]
    out.parts.append(".")
    return out


def transport_sentence(transport: str, s: Mapping[str, Any], slo: Mapping[str, Any],
                       steps: pd.DataFrame | None = None, p: Mapping[str, Any] | None = None) -> str:
    """The headline sentence as plain text (from summary.json alone when no steps are given)."""
    if steps is None:
        steps = pd.DataFrame(columns=["step", "users", "connections", "latency_p99_ms", "error_rate", "valid"])
    return sentence("", transport, s, slo, steps, p).text()
