"""Measured against true: run rtcap's own measurement path against the reference target's calibration knobs.

    python -m rtcap.bench.truth            # the full comparison (a few minutes on 2 cores)
    python -m rtcap.bench.truth --quick    # smaller sizes

Experiments: memory slope vs ballast, delivery p50 shift vs injected delay, loss/duplicates/reordering vs
injected faults, and bytes counted by the users vs an independent proxy.

Each experiment returns plain numbers; tests/test_truth.py runs them small and asserts the tolerances.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from rtcap.loadtests.run.collect import merge_seconds
from rtcap.loadtests.generator.timeline import decode_histogram, new_histogram, read_timeline
from rtcap.targets.adapter import reference_adapter_path
from rtcap.targets.transports import lookup

ROOT = Path(__file__).resolve().parents[1]


def adapter_with(directory: Path, *server_args: str) -> Path:
    """A copy of the reference adapter whose start command adds `server_args` (calibration flags)."""
    text = reference_adapter_path().read_text()
    marker = '"--payload", "{payload}"]'
    assert marker in text, "the reference adapter's start command changed"
    extra = "".join(f', "{arg}"' for arg in server_args)
    path = directory / f"reference{'-'.join([''] + [a.strip('-') for a in server_args])}.toml"
    path.write_text(text.replace(marker, f'"--payload", "{{payload}}"{extra}]'))
    return path


def _rtcap(*args: str) -> None:
    _wait_rtcap([_start_rtcap(*args)])


def _start_rtcap(*args: str) -> tuple[list[str], subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "rtcap.loadtests.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    return list(args), proc


def _wait_rtcap(started: list[tuple[list[str], subprocess.Popen[str]]]) -> None:
    failed = []
    for args, proc in started:
        output, _ = proc.communicate()
        if proc.returncode != 0:
            failed.append(f"rtcap {' '.join(args)} failed:\n{output}")
    if failed:
        raise RuntimeError("\n".join(failed))


def ballast_slopes(work: Path, ballast: int = 65536, transports: str = "sse,ws", steps: str = "50,100,150,200,250",
                   hold: float = 4.0, settle_max: float = 30.0) -> dict[str, dict[str, float]]:
    """Memory per connection (rtcap run's fit) without and with `ballast` bytes held per connection.

    The two sweeps run at the same time: each has its own target process, and a memory slope does not
    depend on how busy the CPU is.
    """
    configs = (("plain", ()), ("ballast", ("--ballast", str(ballast))))
    _wait_rtcap([_start_rtcap("run", "--target", str(adapter_with(work, *args)), "--transports", transports,
                              "--steps", steps, "--hold", str(hold), "--settle", "1", "--settle-max", str(settle_max),
                              "--out-dir", str(work), "--name", name, "--no-report") for name, args in configs])
    out: dict[str, dict[str, float]] = {}
    for name, _ in configs:
        summary = json.loads((work / name / "summary.json").read_text())
        for transport, figures in summary["transports"].items():
            out.setdefault(transport, {})[name] = figures["mem_per_conn_bytes"]
    for figures in out.values():
        figures["difference"] = figures["ballast"] - figures["plain"]
        figures["true"] = ballast
    return out


def _locust(host: str, user_class: str, users: int, seconds: int, record: Path, *extra: str) -> None:
    _locust_together(host, [(user_class, record, extra)], users, seconds)


def _locust_together(host: str, runs: list[tuple[str, Path, tuple[str, ...]]], users: int, seconds: int) -> None:
    """Run one headless Locust per (user class, record directory, extra options), all at the same time."""
    started = []
    for user_class, record, extra in runs:
        record.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--headless", "--host", host,
                   "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--only-summary", "--loglevel", "WARNING",
                   "--rtcap-record", str(record), *extra, user_class]
        with (record / "locust.log").open("w") as log:
            started.append((record, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)))
    for record, proc in started:
        try:
            code = proc.wait(timeout=seconds + 120)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise RuntimeError(f"Locust did not finish; see {record / 'locust.log'}") from None
        if code not in (0, 1):
            raise RuntimeError(f"Locust exited {code}; see {record / 'locust.log'}")


def _served(work: Path, *server_args: str, rate: float = 20.0):
    from rtcap.targets.adapter import load_adapter
    from rtcap.targets.launch import launch

    return launch(load_adapter(adapter_with(work, *server_args)), rate=rate, payload=64)


def _p50_ms(record: Path, transport: str) -> float:
    histogram = new_histogram()
    seconds = merge_seconds([row for path in record.glob("timeline*.jsonl") for row in read_timeline(path)])
    for second in seconds:
        if second["transport"] == transport and second.get("delivery_hist"):
            histogram.add(decode_histogram(second["delivery_hist"]))
    return histogram.get_value_at_percentile(50) / 1000.0


def delay_shift(work: Path, delay_ms: int = 50, users: int = 10, seconds: int = 6) -> dict[str, dict[str, float]]:
    """Delivery p50 per push transport without and with --delay-ms, as the Locust users measure it."""
    out: dict[str, dict[str, float]] = {}
    for name, args in (("plain", ()), ("delayed", ("--delay-ms", str(delay_ms)))):
        target = _served(work, *args)
        try:
            for transport in ("sse", "ws"):
                record = work / f"delay-{name}-{transport}"
                _locust(target.adapter.base_url, lookup(transport).user_class, users, seconds, record)
                out.setdefault(transport, {})[name] = _p50_ms(record, transport)
        finally:
            target.stop()
    for figures in out.values():
        figures["shift"] = figures["delayed"] - figures["plain"]
        figures["true"] = float(delay_ms)
    return out


def multiples(lo: Any, hi: Any, every: int) -> int:
    """How many multiples of `every` lie strictly between lo and hi."""
    return max(0, (hi - 1) // every - lo // every)


def _slack(kind: str, first: int, highest: int, every: int) -> int:
    """Events at the ends of a subscriber's window that may be half of an injected pair.

    A subscriber can join or stop between a duplicate's two copies, or between the two events of a swapped
    pair; a dropped event is never half of anything, so drops have no slack.
    """
    if kind == "duplicate":
        return int(first % every == 0) + int(highest % every == 0)
    if kind == "swap":
        return int(first % every == 1) + int(highest % every == 1)
    return 0


def fault_counts(work: Path, users: int = 5, seconds: int = 6, rate: float = 50.0) -> list[dict[str, Any]]:
    """Per subscriber: lost, duplicated and reordered as reported vs as injected inside its seq window.

    Polling is checked for drops and duplicates; a poll swaps a pair only when both are in one response,
    which depends on where each viewer's polls fall, so its true swap count is not known from seqs alone.
    """
    rows = []
    plans = (("drop", "--drop-every", 10, "lost", ("sse", "ws", "poll")),
             ("duplicate", "--duplicate-every", 7, "duplicated", ("sse", "ws", "poll")),
             ("swap", "--swap-every", 5, "reordered", ("sse", "ws")))
    for kind, flag, every, field, transports in plans:
        target = _served(work, flag, str(every), rate=rate)
        try:
            # Counts do not depend on timing: the transports run at once, each with its own subscribers.
            _locust_together(target.adapter.base_url, [(lookup(t).user_class, work / f"fault-{kind}-{t}",
                                                        ("--poll-interval", "0.2")) for t in transports], users, seconds)
            for transport in transports:
                record = work / f"fault-{kind}-{transport}"
                for path in record.glob("subscribers*.jsonl"):
                    for line in path.read_text().splitlines():
                        sub = json.loads(line)
                        first, highest = sub["first"], sub["highest"]
                        rows.append({"kind": kind, "transport": transport, "every": every, "first": first,
                                     "highest": highest, "injected": multiples(first, highest, every),
                                     "slack": _slack(kind, first, highest, every), "reported": sub[field],
                                     "other": {k: sub[k] for k in ("lost", "duplicated", "reordered") if k != field}})
        finally:
            target.stop()
    return rows


def _timeline_totals(record: Path, transport: str) -> dict[str, int]:
    totals = {"bytes_sent": 0, "bytes_received": 0, "payload_bytes": 0}
    for path in record.glob("timeline*.jsonl"):
        for second in read_timeline(path):
            if second["transport"] == transport:
                for name in totals:
                    totals[name] += int(second.get(name, 0))
    return totals


def wire_bytes(work: Path, users: int = 5, seconds: int = 6) -> list[dict[str, Any]]:
    """Bytes each transport's Locust users counted at their sockets (summed from the run's timeline) vs the
    bytes an independent TCP proxy between them and the target forwarded, each way.

    Locust can stop a user while an answer is on its way to it (even with --stop-timeout a stop can race a
    user waking up): the proxy forwarded those bytes, the user never read them. "unread" is that
    difference; it is at most one response or message per user, and 0 when no stop raced a delivery.
    """
    from rtcap.bench.proxy import CutProxy

    rows = []
    target = _served(work)
    host, port = target.adapter.base_url.removeprefix("http://").rsplit(":", 1)
    try:
        # A viewer stopped mid-poll would leave a response in its socket that it never read: let polls finish.
        plans = (("poll", ("--poll-interval", "0.5", "--stop-timeout", "3")), ("sse", ()), ("ws", ()))
        for transport, extra in plans:
            proxy = CutProxy(host, int(port))
            try:
                record = work / f"bytes-{transport}"
                _locust(f"http://127.0.0.1:{proxy.port}", lookup(transport).user_class, users, seconds, record, *extra)
                counts = proxy.wait_idle(timeout=10.0)  # Locust has exited: wait for its connections to drain
            finally:
                proxy.close()
            totals = _timeline_totals(record, transport)
            rows.append({"transport": transport, "users": users, "client_sent": totals["bytes_sent"],
                         "proxy_up": counts[0], "client_received": totals["bytes_received"], "proxy_down": counts[1],
                         "unread": counts[1] - totals["bytes_received"], "payload_received": totals["payload_bytes"]})
    finally:
        target.stop()
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run every experiment and print measured vs true."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rtcap-truth-") as tmp:
        work = Path(tmp)
        steps = "30,60,90,120,150" if args.quick else "100,200,300,400,500"
        print("ballast: memory per connection (rtcap run fit), bytes")
        for transport, f in ballast_slopes(work, steps=steps).items():
            print(f"  {transport:5} plain {f['plain']:9.0f}  +ballast {f['ballast']:9.0f}  difference {f['difference']:8.0f}"
                  f"  true {f['true']:.0f}  error {100 * (f['difference'] / f['true'] - 1):+.2f}%")
        print("delay: delivery p50, ms")
        for transport, f in delay_shift(work).items():
            print(f"  {transport:5} plain {f['plain']:7.2f}  delayed {f['delayed']:7.2f}  shift {f['shift']:6.2f}  true {f['true']:.0f}")
        print("faults: per subscriber, injected inside its window vs reported")
        for row in fault_counts(work):
            print(f"  {row['kind']:9} every {row['every']:2} {row['transport']:5} seq {row['first']}..{row['highest']}"
                  f"  injected {row['injected']:3} (+/-{row['slack']} at the window ends)  reported {row['reported']:3}"
                  f"  other {row['other']}")
        print("bytes: counted by the clients (timeline) vs an independent proxy, bytes")
        for row in wire_bytes(work):
            print(f"  {row['transport']:5} sent {row['client_sent']:9} proxy up {row['proxy_up']:9}   received "
                  f"{row['client_received']:9} proxy down {row['proxy_down']:9} (unread at the stop "
                  f"{row['unread']})   payload {row['payload_received']:9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
