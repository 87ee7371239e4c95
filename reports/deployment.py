"""A multi-process target split by role: its workers and its broker, per step, from samples.csv.

Beside each summed `target` row the sampler writes one row per member process of a deployment, with role
`target:worker`, `target:broker` or `target:supervisor` (reports/schema.py MEMBER_ROLES) and the member's pid,
from the same reading as the sum. Only the summed row feeds the memory and CPU fits; this module answers what
the sum hides: how the memory and CPU divide between workers and broker, how evenly the kernel spread the
connections over the workers, and how much traffic went through the broker.

Messages through the broker per second (`broker_msgs_per_s`) are counted, not read from Redis: every published
event enters the broker once (the script that numbers it) and leaves it once per worker (pub/sub delivers it
to every worker's subscription), and every request a worker answers from shared state (a poll, a stream's
start) is one round trip: events/s x (1 + workers) + requests/s. Events/s is the step's `published` / duration
when rtcap published, else the target's own rate (meta.json target.rate). Pure: frames in, frames out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from rtcap.reports.schema import MEMBER_ROLES, member_role
from rtcap.reports.units import finite

if TYPE_CHECKING:
    from rtcap.reports.plan import PlanInputs

ROLE_OF = {member_role(kind): kind for kind in MEMBER_ROLES}
"""samples.csv role -> member kind."""
COLUMNS = ("transport", "step", "member", "processes", "rss_bytes", "cpu_percent", "connections",
           "conns_min", "conns_max")


def member_frame(samples: pd.DataFrame) -> pd.DataFrame:
    """One row per (transport, step, member kind) over the measurement windows: processes of that kind, their
    RSS summed (each process's median), CPU summed (each one's mean, % of a core), inbound connections summed,
    and the fewest and most connections one process of that kind held. Empty for a single-process target."""
    if samples.empty or "role" not in samples:
        return pd.DataFrame(columns=COLUMNS)
    rows = samples[samples["role"].isin(list(ROLE_OF)) & (samples["phase"] == "measure")]
    if rows.empty:
        return pd.DataFrame(columns=COLUMNS)
    rows = rows.assign(member=rows["role"].map(ROLE_OF))
    keys = ["run"] * ("run" in rows) + ["transport", "step", "member"]  # overlaid runs stay apart
    per_pid = rows.groupby([*keys, "pid"], as_index=False).agg(
        rss_bytes=("rss_bytes", "median"), cpu_percent=("cpu_percent", "mean"),
        connections=("tcp_established", "median"))
    out = per_pid.groupby(keys, as_index=False).agg(
        processes=("pid", "nunique"), rss_bytes=("rss_bytes", "sum"), cpu_percent=("cpu_percent", "sum"),
        connections=("connections", "sum"), conns_min=("connections", "min"), conns_max=("connections", "max"))
    return out[keys[:-3] + list(COLUMNS)]


def step_shares(steps: pd.DataFrame, samples: pd.DataFrame, rate: float | None) -> pd.DataFrame:
    """Per valid step of a deployment (both a worker and a broker sampled): workers, worker and broker RSS and
    CPU, connections per worker (fewest, most, imbalance = most / mean), and messages through the broker with
    the broker's CPU per message. Empty when the run sampled no deployment."""
    members = member_frame(samples.drop(columns="run", errors="ignore"))
    if members.empty:
        return pd.DataFrame()
    wide = members.pivot_table(index=["transport", "step"], columns="member",
                               values=["processes", "rss_bytes", "cpu_percent", "connections", "conns_min",
                                       "conns_max"], aggfunc="first")
    wide.columns = [f"{member}_{figure}" for figure, member in wide.columns]
    wide = wide.reset_index()
    need = {"worker_processes", "broker_processes"}
    if not need <= set(wide.columns):
        return pd.DataFrame()
    valid = steps[steps["valid"].astype(bool)][["transport", "step", "users", "connections", "duration_s", "rps",
                                                "msgs_per_s", "published", "rss_bytes", "cpu_percent"]]
    out = valid.merge(wide, on=["transport", "step"], how="inner")
    out = out[out["worker_processes"].notna() & out["broker_processes"].notna()].copy()
    if out.empty:
        return pd.DataFrame()
    workers = out["worker_processes"]
    published = pd.to_numeric(out["published"], errors="coerce") / out["duration_s"]
    out["events_per_s"] = published.fillna(rate if rate is not None else float("nan"))
    out["broker_msgs_per_s"] = out["events_per_s"] * (1 + workers) + out["rps"]
    out["broker_cpu_per_msg"] = out["broker_cpu_percent"] / 100.0 / out["broker_msgs_per_s"]
    mean = out["worker_connections"] / workers
    out["conns_per_worker"] = mean
    out["conns_imbalance"] = out["worker_conns_max"] / mean.where(mean > 0)
    return out


def transport_deployment(shares: pd.DataFrame, transport: str) -> dict[str, Any] | None:
    """The deployment figures of one transport, for the planner and the claims: medians over its valid steps,
    and the broker's CPU per message pooled (sum of broker cores / sum of messages/s: idle included, so an upper
    bound). None when the transport's target was one process."""
    rows = shares[shares["transport"] == transport] if not shares.empty else shares
    if rows.empty:
        return None

    def median(column: str) -> float | None:
        return finite(rows[column].median()) if column in rows else None

    msgs = rows["broker_msgs_per_s"].sum()
    return {
        "workers": int(rows["worker_processes"].median()),
        "worker_rss_bytes": median("worker_rss_bytes"), "worker_cpu_percent": median("worker_cpu_percent"),
        "broker_rss_bytes": median("broker_rss_bytes"), "broker_cpu_percent": median("broker_cpu_percent"),
        "broker_msgs_per_s": median("broker_msgs_per_s"),
        "broker_cpu_per_msg": finite(rows["broker_cpu_percent"].sum() / 100.0 / msgs) if msgs > 0 else None,
        "conns_imbalance": median("conns_imbalance"),
        "steps": [int(s) for s in rows["step"]],
    }


def run_rate(meta: Mapping[str, Any]) -> float | None:
    """Events the target published by itself per second (meta.json target.rate), None when unknown."""
    return finite((meta.get("target") or {}).get("rate"))


def is_deployment(samples: pd.DataFrame) -> bool:
    """Whether a run sampled a target of several processes (member rows beside the summed one)."""
    return not samples.empty and "role" in samples and bool(samples["role"].isin(list(ROLE_OF)).any())


def plan_broker(d: Mapping[str, Any], p: "PlanInputs", instances: Sequence[int], requests: float) -> dict[str, Any]:
    """The broker as a line item of a deployment (instances of the run's N workers sharing one broker).

    Every event enters the broker once and leaves it once per worker; every request a worker answers from shared
    state is one round trip (the module docstring): messages/s = u x (1 + instances x N) + requests/s. Redis runs
    commands on one thread, so one broker carries (1 - headroom) / (CPU per message) messages/s; past that the
    broker, not the workers, limits the fan-out and needs sharding (brokers = ceil(messages / that))."""
    per_msg = finite(d.get("broker_cpu_per_msg"))
    workers = [n * d["workers"] for n in instances]
    msgs = [p.update_rate * (1 + w) + requests for w in workers]
    capacity = (1 - p.headroom) / per_msg if per_msg else None
    return {"workers_per_instance": d["workers"], "workers": workers, "msgs_per_s": msgs,
            "cpu_per_msg": per_msg, "capacity_msgs_per_s": capacity,
            "cores": None if per_msg is None else [x * per_msg for x in msgs],
            "brokers": None if capacity is None else [max(1, math.ceil(x / capacity)) for x in msgs],
            "binds": capacity is not None and msgs[1] > capacity, "rss_bytes": finite(d.get("broker_rss_bytes"))}
