"""targets/transports.py is the one home of the transports: the command line, the adapter, the Locust users and
the report all take their names from it and agree, and an unknown name is refused wherever one comes in."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rtcap.loadtests.run.check import check_transport
from rtcap.loadtests.cli import build_parser
from rtcap.loadtests.run.sweep import RunError, RunOptions, load_target, locust_command
from rtcap.reports import slo, units
from rtcap.targets import adapter as adapters
from rtcap.targets.transports import NAMES, REGISTRY, RUN_DEFAULT, Transport, UnknownTransport, checked, lookup

ROOT = Path(__file__).resolve().parents[1]


def _transports_arg(*argv: str) -> list[str]:
    return build_parser().parse_args(argv).transports


def test_records_are_consistent() -> None:
    assert len(set(NAMES)) == len(NAMES) and sorted(t.shown for t in REGISTRY) == list(range(len(REGISTRY)))
    assert len({t.user_class for t in REGISTRY}) == len(REGISTRY)
    colours = [t.colour for t in REGISTRY if t.colour is not None]
    assert len(set(colours)) == len(colours)
    spec_fields = {f.name for f in dataclasses.fields(adapters.TransportSpec)}
    for t in REGISTRY:
        assert set(t.adapter_keys) <= spec_fields, t.name
        assert t.kind in ("polled", "held stream", "request/response", "room"), t.name
        assert not (t.interval and not t.polled), t.name  # only a poll has an interval
    assert set(RUN_DEFAULT) <= set(NAMES)


def test_the_command_line_accepts_exactly_the_registry() -> None:
    assert _transports_arg("run", "--transports", ",".join(NAMES)) == list(NAMES)
    assert _transports_arg("check-target", "x.toml", "--transports", ",".join(NAMES)) == list(NAMES)
    run = next(a for a in build_parser()._subparsers._group_actions[0].choices["run"]._actions
               if "--transports" in a.option_strings)
    assert "comma list from " + ",".join(NAMES) in run.help and f"default {','.join(RUN_DEFAULT)}" in run.help


def test_the_adapter_accepts_exactly_the_registry() -> None:
    assert adapters.TRANSPORTS == NAMES
    reference = adapters.load_adapter(adapters.reference_adapter_path())
    assert sorted(reference.transports) == sorted(NAMES)
    for name, spec in reference.transports.items():
        assert spec.websocket == lookup(name).websocket


def test_each_transport_has_the_user_class_its_record_names() -> None:
    # Importing Locust patches the process for gevent: look at the users from a separate interpreter.
    code = ("import json, locust, locustfile\nfrom rtcap.loadtests.generator import catalog\n"
            "concrete = sorted(n for n, v in vars(catalog).items() if isinstance(v, type) and issubclass(v, locust.User)"
            " and v.abstract is False)\n"
            "print(json.dumps({'users': {n: getattr(locustfile, n).transport for n in locustfile.__all__},"
            " 'concrete': concrete}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["users"] == {t.user_class: t.name for t in REGISTRY}
    assert found["concrete"] == sorted(t.user_class for t in REGISTRY)


def test_each_user_module_defines_its_concrete_user_class() -> None:
    # catalog.py takes each user from its record's module: the class must be defined there, runnable by Locust.
    code = ("import importlib, json, locust\n"
            "from rtcap.targets.transports import REGISTRY\n"
            "found = {}\n"
            "for t in REGISTRY:\n"
            "    module = importlib.import_module('rtcap.loadtests.transports.' + t.user_module)\n"
            "    v = getattr(module, t.user_class, None)\n"
            "    found[t.name] = isinstance(v, type) and issubclass(v, locust.User) and v.abstract is False"
            " and v.__module__ == module.__name__ and v.transport == t.name\n"
            "print(json.dumps(found))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {t.name: True for t in REGISTRY}


def _needed_hooks(record: Transport) -> tuple[str, ...]:
    """The check hooks loadtests/run/check.py calls for a record of this kind."""
    if record.request_response:
        return ("check_requests",)
    return ("open_check", "send_check") if record.kind == "room" else ("open_check",)


@pytest.mark.parametrize("record", REGISTRY, ids=NAMES)
def test_each_check_module_is_locust_free_and_has_the_hooks_its_kind_needs(record: Transport) -> None:
    # The orchestrator imports the check module: importing it must pull in neither Locust nor gevent.
    code = ("import importlib, json, sys\n"
            f"module = importlib.import_module('rtcap.loadtests.transports.{record.check_module}')\n"
            f"hooks = [h for h in {list(_needed_hooks(record))!r} if not callable(getattr(module, h, None))]\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent'))\n"
            "print(json.dumps({'missing': hooks, 'heavy': heavy}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"missing": [], "heavy": []}


def test_a_check_module_without_the_needed_hook_is_an_error_naming_both(monkeypatch: pytest.MonkeyPatch) -> None:
    # Never a fallback to another transport's check: the row fails before the target is touched.
    from rtcap.loadtests.run import check

    reference = adapters.load_adapter(adapters.reference_adapter_path()).with_base_url("http://127.0.0.1:9")
    cases = {"sse": ("checking", "open_check"), "chat": ("sse_client", "send_check"),
             "rest": ("ws_client", "check_requests")}
    for name, (module, hook) in cases.items():
        record = dataclasses.replace(lookup(name), check_module=module)
        monkeypatch.setattr(check, "lookup", lambda _name, record=record: record)
        result = check_transport(reference, name, timeout=1.0)
        assert not result.ok and result.connect_ms is None, name
        assert result.why == (f"transport {name!r} cannot be checked: its check module "
                              f"rtcap.loadtests.transports.{module} has no {hook}() (a {record.kind} transport "
                              f"needs it)"), result.why


def test_rtcap_run_starts_the_registry_user(tmp_path: Path) -> None:
    adapter = adapters.load_adapter(adapters.reference_adapter_path())
    options = RunOptions(name="registry", out_dir=tmp_path, transports=list(NAMES))
    assert RunOptions(name="default").transports == list(RUN_DEFAULT)
    for t in REGISTRY:
        assert locust_command(options, t.name, adapter, tmp_path)[-1] == t.user_class


def test_the_report_names_orders_and_limits_from_the_registry() -> None:
    assert [units.transport_name(t.name) for t in REGISTRY] == [t.display for t in REGISTRY]
    shown = [t.name for t in sorted(REGISTRY, key=lambda t: t.shown)]
    assert units.ordered_transports([*reversed(NAMES), "custom"]) == [*shown, "custom"]
    assert {t.name: units.throughput_kind(t.name) for t in REGISTRY} == {
        t.name: "poll" if t.polled or t.request_response else "push" for t in REGISTRY}
    assert set(slo.limits(1000, 1.0, 250, NAMES)) == {t.name for t in REGISTRY if t.interval}


def test_an_unknown_transport_is_refused_everywhere(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(UnknownTransport, match="grpc"):
        lookup("grpc")
    with pytest.raises(UnknownTransport):
        checked(["sse", "grpc"])
    for argv in (("run", "--transports", "sse,grpc"), ("check-target", "x.toml", "--transports", "grpc")):
        with pytest.raises(SystemExit) as exit_:
            build_parser().parse_args(argv)
        assert exit_.value.code == 2
        assert "unknown transport(s) grpc; choose from " + ", ".join(NAMES) in capsys.readouterr().err
    with pytest.raises(adapters.AdapterError, match="transports.grpc: unknown transport"):
        adapters.adapter_from_dict({"name": "x", "base_url": "http://127.0.0.1:9",
                                    "transports": {"grpc": {"url": "/grpc"}}})
    with pytest.raises(ValueError, match="grpc"):
        adapters.TransportSpec("grpc", "/grpc")
    with pytest.raises(RunError, match="unknown transport"):
        load_target(RunOptions(name="x", out_dir=tmp_path, transports=["grpc"]))
    # check-target: refused before any connection, never checked as if it were a poll.
    result = check_transport(adapters.load_adapter(adapters.reference_adapter_path()), "grpc", timeout=1.0)
    assert not result.ok and result.why.startswith("unknown transport(s) grpc")


def test_the_reference_server_labels_only_registry_transports() -> None:
    # The bundled server's Prometheus labels name its own handlers, a subset of the transports.
    from rtcap.targets.reference import httpcache, metrics

    for labels in (metrics.TRANSPORTS, metrics.STREAM_TRANSPORTS, metrics.FAULT_TRANSPORTS, httpcache.ENDPOINTS):
        assert set(labels) <= set(NAMES), labels
