"""Locust event hooks that run the per-second timeline recorder when `--rtcap-record DIR` is given.

One process (LocalRunner): a "local" recorder writes DIR/timeline.jsonl and DIR/subscribers.jsonl.

Distributed (a master and workers, e.g. `locust --processes 2`): only the master writes, the same two
files; the workers write nothing, so nothing is counted twice. The rows travel over Locust's own channel:

- every WORKER_REPORT_INTERVAL (3 s) each worker adds its finished seconds and stopped subscribers to
  Locust's stats report (`report_to_master`, key "rtcap_timeline"); the master merges them from
  `worker_report` into its recorder, whose `rows()` is the live merged view;
- when a worker's test stops (`test_stop` on the worker) it sends what is left in a custom message
  "rtcap_timeline", on the same socket and so before Locust's "client_stopped";
- the end. In locust/runners.py a headless master (end of `-t` or of a shape) calls `quit()`, which fires
  the master's `test_stop` BEFORE telling the workers anything, then sends "quit" and stops listening
  0.5 s later; a master stopped from the web UI sends "stop" and fires `test_stop` once the workers'
  user counts read 0, which a stats report can show before the worker's own `test_stop` has run. So the
  master's `test_stop` listener sends each connected worker "rtcap_flush" with a fresh token; a worker
  receiving it stops its users if they still run (what the coming "stop"/"quit" would do; its
  `test_stop` ships its last rows) and answers with "rtcap_timeline" carrying the token, after
  everything it recorded. The master waits (gevent, at most the stop timeout + FINAL_WAIT_S) for every
  answer, then writes everything left and closes. Only if `test_stop` runs in the master's message loop
  itself (the last worker quit) does the wait happen in a separate greenlet, so it can be answered,
  joined when the master quits. A worker quitting on its own (Ctrl-C, lost master) ships its rows from
  `quitting` before Locust's own "quit" message leaves. Rows that still arrive after the master wrote
  (a worker that crashed and came back, say) are merged and appended (see loadtests/generator/recorder.py).
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import gevent
from gevent.event import Event
from locust import events
from locust.runners import STATE_MISSING, STATE_RUNNING, STATE_SPAWNING, MasterRunner, WorkerRunner

from rtcap.loadtests.generator.options import Settings
from rtcap.loadtests.generator.recorder import GENERATOR, LOCAL, MASTER, WORKER, TimelineRecorder
from rtcap.loadtests.transports import netio
from rtcap.targets.adapter import AdapterError, load_adapter

logger = logging.getLogger(__name__)

ROWS_MESSAGE = "rtcap_timeline"
"""Worker -> master: {"rows": [...], "subscribers": [...], "final": bool, "token": str|None}; also the key
of the same payload inside Locust's periodic stats report."""
FLUSH_MESSAGE = "rtcap_flush"
"""Master -> worker: {"token": str}: stop, ship everything recorded, answer with the token."""
FINAL_WAIT_S = 15.0
"""How long the master waits for the workers' last rows, beyond Locust's stop timeout."""
GONE_GRACE_S = 2.0
"""How long the master still waits for workers that all left (quit, went missing) before answering."""

_recorders: dict[int, TimelineRecorder] = {}
"""The running recorder of each environment (by id)."""
_latest: dict[int, TimelineRecorder] = {}
"""The most recent recorder of each environment, kept after its test stops (live view, late rows)."""
_awaiting: dict[int, tuple[str, set[str], Event]] = {}
"""Master: the token of the flush in progress, the workers that have not answered it, and a wake-up."""
_finishers: dict[int, gevent.Greenlet] = {}
"""Master: a wait for the workers' last rows running in its own greenlet (joined when Locust quits)."""


def recorder_of(environment: Any) -> TimelineRecorder | None:
    """The recorder of this environment's current or last test (the master's holds the merged live view)."""
    return _recorders.get(id(environment)) or _latest.get(id(environment))


def live_rows(environment: Any, since: int | None = None) -> list[dict[str, Any]]:
    """The merged per-second rows recorded so far (timeline lines), for a live view; [] when not recording."""
    recorder = recorder_of(environment)
    return recorder.rows(since) if recorder is not None else []


def check_target(environment: Any, **_kwargs: Any) -> None:
    """Load --target once at start, so a bad adapter file stops Locust with its message, not a traceback."""
    settings = Settings.of(environment)
    if not settings.target:
        return
    try:
        adapter = load_adapter(settings.target)
    except (AdapterError, OSError) as error:
        raise SystemExit(f"rtcap: {error}") from None
    if not environment.host and "{port}" not in adapter.base_url:
        environment.host = adapter.base_url


def install(environment: Any) -> None:
    """Attach the recorder's listeners to this environment's events and its runner's messages (idempotent).

    Locust's command line does it through the `init` event; code building its own Environment calls it
    after creating the runner.
    """
    _install_events(environment.events)
    # Quitting listeners run last-registered first: after the runner's own (which tells the master "quit"
    # on a worker, and sends "quit" to the workers on a master), so that ours runs before it.
    with contextlib.suppress(ValueError):
        environment.events.quitting.remove_listener(stop_on_quit)
    environment.events.quitting.add_listener(stop_on_quit)
    runner = environment.runner
    if isinstance(runner, MasterRunner) and ROWS_MESSAGE not in runner.custom_messages:
        runner.register_message(ROWS_MESSAGE, _on_rows_message)
    if isinstance(runner, WorkerRunner) and FLUSH_MESSAGE not in runner.custom_messages:
        runner.register_message(FLUSH_MESSAGE, _on_flush_message)


def _install_events(hooks: Any) -> None:
    if getattr(hooks, "_rtcap_recorder_installed", False):
        return
    hooks._rtcap_recorder_installed = True
    hooks.test_start.add_listener(start_recorder)
    hooks.test_stop.add_listener(stop_recorder)
    hooks.quitting.add_listener(stop_on_quit)
    hooks.report_to_master.add_listener(_on_report_to_master)
    hooks.worker_report.add_listener(_on_worker_report)


def use_source_ips(environment: Any) -> None:
    """Open this process's connections from --source-ips, as its own command line gives them: a worker's own
    addresses, which the master's options (sent with every spawn) must not replace."""
    from rtcap.loadtests.values import source_addresses

    netio.use_source_addresses(source_addresses(Settings.of(environment).source_ips or ""))


@events.init.add_listener
def _on_init(environment: Any, **_kwargs: Any) -> None:
    check_target(environment)
    use_source_ips(environment)
    if environment.runner is not None:
        install(environment)


def start_recorder(environment: Any, **_kwargs: Any) -> None:
    """Start recording when a test starts, if a record directory was asked for."""
    record = Settings.of(environment).rtcap_record
    if not record or id(environment) in _recorders:
        return
    runner = environment.runner
    if isinstance(runner, (MasterRunner, WorkerRunner)):
        install(environment)  # the custom messages, in case `init` was not fired (idempotent)
    if isinstance(runner, MasterRunner):
        recorder = TimelineRecorder(environment, Path(record) / "timeline.jsonl", role=MASTER)
    elif isinstance(runner, WorkerRunner):
        recorder = TimelineRecorder(environment, None, role=WORKER)
    else:
        recorder = TimelineRecorder(environment, Path(record) / "timeline.jsonl", role=LOCAL)
    recorder.start()
    _recorders[id(environment)] = _latest[id(environment)] = recorder


def stop_recorder(environment: Any, **_kwargs: Any) -> None:
    """Finish recording when the test stops: write (local), ship (worker), or collect then write (master)."""
    recorder = _recorders.pop(id(environment), None)
    if recorder is None:
        return
    if recorder.role == WORKER:
        _ship(environment, recorder.stop(), final=True)
    elif recorder.role == MASTER:
        _finish_master(environment, recorder)
    else:
        recorder.stop()


def wait_finished(environment: Any) -> None:
    """Return once a stopped test's rows are all in (a master waits for its workers' last rows)."""
    finisher = _finishers.get(id(environment))
    if finisher is not None:
        finisher.join(timeout=float(getattr(environment, "stop_timeout", 0.0) or 0.0) + FINAL_WAIT_S)


def stop_on_quit(environment: Any, **_kwargs: Any) -> None:
    """Make sure nothing recorded is lost when Locust quits (a master's pending write included)."""
    stop_recorder(environment)
    finisher = _finishers.pop(id(environment), None)
    if finisher is not None:
        finisher.join(timeout=float(getattr(environment, "stop_timeout", 0.0) or 0.0) + FINAL_WAIT_S)


# -- worker side ---------------------------------------------------------------------------------------

def _ship(environment: Any, payload: dict[str, Any], final: bool, token: str | None = None) -> None:
    try:
        environment.runner.send_message(ROWS_MESSAGE, {**payload, "final": final, "token": token})
    except Exception:  # noqa: BLE001  (a broken connection to the master must not break the worker's stop)
        logger.exception("rtcap: could not send the timeline rows to the master")


def _on_report_to_master(client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
    """Worker: add the finished seconds and stopped subscribers to Locust's periodic stats report."""
    for recorder in list(_recorders.values()):
        if recorder.role == WORKER and getattr(recorder.environment.runner, "client_id", None) == client_id:
            payload = recorder.take_outbox()
            if payload["rows"] or payload["subscribers"]:
                data[ROWS_MESSAGE] = payload


def _on_flush_message(environment: Any, msg: Any, **_kwargs: Any) -> None:
    """Worker: the master's test stopped; stop too, ship everything, and answer with its token."""
    runner = environment.runner
    if runner.state in (STATE_SPAWNING, STATE_RUNNING):
        runner.stop()  # fires test_stop here: stop_recorder ships the last rows
    recorder = _recorders.pop(id(environment), None)  # a recorder whose test started without users
    payload = recorder.stop() if recorder is not None and recorder.role == WORKER else {"rows": [], "subscribers": []}
    _ship(environment, payload, final=True, token=(msg.data or {}).get("token"))


# -- master side ---------------------------------------------------------------------------------------

def tagged(rows: list[dict[str, Any]], worker: str) -> list[dict[str, Any]]:
    """A worker's rows with its timer lag kept under its id as well ("workers": {id: {"lag_hist"}}): merged
    rows add every worker's lag up, and a step voided by one lagging worker must name it."""
    return [{**row, "workers": {worker: {"lag_hist": row["lag_hist"]}}}
            if row.get("transport") == GENERATOR and row.get("lag_hist") else row for row in rows]


def _merge_into_master(environment: Any, payload: dict[str, Any], worker: str) -> None:
    recorder = _latest.get(id(environment))
    if recorder is None or recorder.role != MASTER:
        logger.debug("rtcap: timeline rows from a worker with no master recorder; dropped")
        return
    recorder.receive(tagged(payload.get("rows") or [], worker), payload.get("subscribers") or [])


def _on_worker_report(client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
    """Master: merge the rows a worker put into its periodic stats report."""
    payload = data.get(ROWS_MESSAGE)
    if payload:
        # worker_report names no environment: the master recorders listening to it (in practice one).
        for recorder in list(_latest.values()):
            if recorder.role == MASTER and isinstance(recorder.environment.runner, MasterRunner) \
                    and client_id in recorder.environment.runner.worker_indexes:
                recorder.receive(tagged(payload.get("rows") or [], client_id), payload.get("subscribers") or [])


def _on_rows_message(environment: Any, msg: Any, **_kwargs: Any) -> None:
    """Master: a worker's rows at its test stop, or its answer to a flush."""
    data = msg.data or {}
    _merge_into_master(environment, data, msg.node_id)
    awaiting = _awaiting.get(id(environment))
    if awaiting is not None and data.get("token") == awaiting[0]:
        awaiting[1].discard(msg.node_id)
        awaiting[2].set()


def _in_message_loop(runner: Any) -> bool:
    """Whether this greenlet is the master's message loop (it must not wait for messages itself)."""
    return getattr(gevent.getcurrent(), "_run", None) == getattr(runner, "client_listener", None)


def _finish_master(environment: Any, recorder: TimelineRecorder) -> None:
    runner = environment.runner
    token = uuid.uuid4().hex
    workers = {node.id for node in runner.clients.all if node.state != STATE_MISSING}
    _awaiting[id(environment)] = (token, set(workers), Event())
    for worker in workers:
        try:
            runner.send_message(FLUSH_MESSAGE, {"token": token}, client_id=worker)
        except Exception:  # noqa: BLE001
            logger.exception("rtcap: could not ask worker %s for its last timeline rows", worker)
    timeout = float(getattr(environment, "stop_timeout", 0.0) or 0.0) + FINAL_WAIT_S
    if _in_message_loop(runner):
        _finishers[id(environment)] = gevent.spawn(_wait_then_stop, environment, recorder, timeout)
    else:
        _wait_then_stop(environment, recorder, timeout)


def _wait_then_stop(environment: Any, recorder: TimelineRecorder, timeout: float) -> None:
    runner = environment.runner
    token, waiting, wake = _awaiting[id(environment)]
    deadline = time.monotonic() + timeout
    try:
        while True:
            wake.clear()
            if not waiting:
                break
            now = time.monotonic()
            if not any(worker in runner.clients for worker in waiting):
                deadline = min(deadline, now + GONE_GRACE_S)  # none of them can answer a flush any more
            if now >= deadline:
                logger.warning("rtcap: no last timeline rows from worker(s) %s; their final seconds may be missing",
                               ", ".join(sorted(waiting)))
                break
            wake.wait(min(0.5, deadline - now))
    finally:
        if _awaiting.get(id(environment), (None,))[0] == token:
            del _awaiting[id(environment)]
        recorder.stop()


_install_events(events)  # Locust's global events, as the command line uses them; `init` adds the messages
