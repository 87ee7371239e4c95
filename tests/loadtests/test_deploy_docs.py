"""The deployment docs (loadtests/deploy/) run: Docker is not available here, so every rtcap command the
compose file, the Kubernetes manifests and the README give is parsed by rtcap's own parsers, every `rtcap run`
passes its preflight, and the ports, names and worker counts they wire together agree with each other and
with the CLI's defaults. tests/loadtests/test_netns.py runs the same layout for real across namespaces."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from rtcap.loadtests import options as declared
from rtcap.loadtests.cli import build_parser
from rtcap.loadtests.run.agent import DEFAULT_LISTEN_PORT
from rtcap.loadtests.run.sweep import RunOptions
from rtcap.loadtests.run.validate import preflight
from rtcap.targets.adapter import load_adapter

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "loadtests" / "deploy"
ADAPTER = DEPLOY / "adapter.toml"
MASTER_PORT = declared.default("master_bind_port")
TARGET_PORT = urlsplit(load_adapter(ADAPTER).base_url).port
K8S_ENV = {"NODE_IP": "192.0.2.10"}
"""What Kubernetes substitutes for $(NAME) in args (a documentation address for the node's)."""


def parse(argv: list[str]) -> argparse.Namespace:
    """`rtcap ARGV` parsed as the CLI would (`target serve` by the reference target's own parser)."""
    from rtcap.targets.reference.__main__ import build_arg_parser

    try:
        if argv[:2] == ["target", "serve"]:
            return argparse.Namespace(command="target serve", **vars(build_arg_parser().parse_args(argv[2:])))
        return build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"rtcap {shlex.join(argv)}: the CLI refuses it (see the error above)")


def manifests() -> dict[str, list[dict[str, Any]]]:
    return {path.name: [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
            for path in sorted((DEPLOY / "k8s").glob("*.yaml"))}


def by_kind(kind: str, name: str) -> dict[str, Any]:
    found = [d for docs in manifests().values() for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"one {kind} {name} in k8s/"
    return found[0]


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc["spec"]
    pod = spec["template"]["spec"] if "template" in spec else spec
    return pod["containers"]


def k8s_commands() -> dict[str, list[str]]:
    """rtcap argv per "Kind/name/container", for containers that run the image's entrypoint (rtcap)."""
    found = {}
    for docs in manifests().values():
        for doc in docs:
            if doc["kind"] not in ("Deployment", "Job", "DaemonSet", "Pod"):
                continue
            for container in containers(doc):
                if "command" not in container:
                    args = [re.sub(r"\$\((\w+)\)", lambda m: K8S_ENV[m.group(1)], a) for a in container["args"]]
                    found[f"{doc['kind']}/{doc['metadata']['name']}/{container['name']}"] = args
    return found


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]


def readme() -> str:
    return (DEPLOY / "README.md").read_text()


def readme_commands() -> list[list[str]]:
    """Every `rtcap ...` line of the README's bash blocks (a trailing & is the shell's, not rtcap's)."""
    lines = [line.strip().removesuffix("&").strip() for block in re.findall(r"```bash\n(.*?)```", readme(), re.S)
             for line in block.splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("rtcap ")]


def readme_adapter(tmp_path: Path) -> Path:
    """The README's three-machine adapter (its one toml block), as the file the master is told to load."""
    (block,) = re.findall(r"```toml\n(.*?)```", readme(), re.S)
    path = tmp_path / "three.toml"
    path.write_text(block)
    return path


def every_command() -> list[list[str]]:
    return [*(s["command"] for s in compose().values()), *k8s_commands().values(), *readme_commands()]


def run_options(args: argparse.Namespace, target: Path, out_dir: Path) -> RunOptions:
    """RunOptions as `rtcap run` builds them, with the adapter and output directory of this machine."""
    values = {o.dest: getattr(args, o.dest) for o in declared.RUN}
    values = {dest: declared.default(dest) if value is None else value for dest, value in values.items()}
    values.update(name="deploy-check", target=target, out_dir=out_dir,
                  settle=min(declared.default("settle"), values["hold"] / 3))
    return RunOptions(**values)


def test_every_command_parses_and_the_docs_use_every_role() -> None:
    commands = every_command()
    assert len(commands) >= 12
    used = {"target serve" if argv[:2] == ["target", "serve"] else argv[0] for argv in commands}
    assert used == {"run", "worker", "agent", "target serve"}
    for argv in commands:
        parse(argv)


def test_every_sweep_passes_rtcap_runs_preflight(tmp_path: Path) -> None:
    """With --host the master may listen off loopback: what validate.preflight refuses is a non-loopback master
    with a target rtcap would start itself."""
    sweeps = [(compose()["rtcap-master"]["command"], ADAPTER),
              (k8s_commands()["Job/rtcap-master/master"], ADAPTER),
              *((argv, readme_adapter(tmp_path)) for argv in readme_commands() if argv[0] == "run")]
    assert len(sweeps) == 3
    for argv, adapter in sweeps:
        args = parse(argv)
        options = run_options(args, adapter, tmp_path)
        assert options.expect_workers and options.host and options.master_bind_host != "127.0.0.1"
        assert options.master_bind_port == MASTER_PORT
        preflight([options], tmp_path, "deploy-check")
        assert urlsplit(args.host).port == urlsplit(load_adapter(adapter).base_url).port == TARGET_PORT


def test_compose_wires_master_workers_agent_and_target_together() -> None:
    services = compose()
    assert {s["image"] for s in services.values()} == {"rtcap:latest"}
    master, worker = parse(services["rtcap-master"]["command"]), parse(services["rtcap-worker"]["command"])
    assert worker.master == ("rtcap-master", MASTER_PORT)
    assert master.expect_workers == services["rtcap-worker"]["deploy"]["replicas"] * worker.processes
    assert master.target == Path("/deploy/adapter.toml") and "./adapter.toml:/deploy/adapter.toml:ro" in \
        services["rtcap-master"]["volumes"]
    target, agent = parse(services["rtcap-target"]["command"]), parse(services["rtcap-agent"]["command"])
    assert target.port == agent.port == TARGET_PORT and target.host == "0.0.0.0"
    # The sidecar shares the target's network: the adapter's agent URL is the target's name and the agent's port.
    assert services["rtcap-agent"]["network_mode"] == services["rtcap-agent"]["pid"] == "service:rtcap-target"
    agent_url = urlsplit(load_adapter(ADAPTER).process.value)
    assert (agent_url.hostname, agent_url.port) == ("rtcap-target", agent.listen_port) == ("rtcap-target",
                                                                                            DEFAULT_LISTEN_PORT)


def test_kubernetes_services_ports_and_worker_counts_agree_with_the_cli() -> None:
    commands = k8s_commands()
    master, worker = parse(commands["Job/rtcap-master/master"]), parse(commands["Deployment/rtcap-worker/worker"])
    service = by_kind("Service", "rtcap-master")
    assert worker.master == (service["metadata"]["name"], MASTER_PORT)
    assert [p["port"] for p in service["spec"]["ports"]] == [MASTER_PORT]
    job = by_kind("Job", "rtcap-master")
    assert service["spec"]["selector"].items() <= job["spec"]["template"]["metadata"]["labels"].items()
    assert [p["containerPort"] for p in containers(job)[0]["ports"]] == [MASTER_PORT]
    assert master.expect_workers == by_kind("Deployment", "rtcap-worker")["spec"]["replicas"] * worker.processes
    mounted = {m["mountPath"] for m in containers(job)[0]["volumeMounts"]}
    assert master.target.parent.as_posix() in mounted and master.out_dir.as_posix() in mounted

    target_service = by_kind("Service", "rtcap-target")
    ports = {p["name"]: p["port"] for p in target_service["spec"]["ports"]}
    target, agent = parse(commands["Deployment/rtcap-target/target"]), parse(commands["Deployment/rtcap-target/agent"])
    adapter = load_adapter(ADAPTER)
    assert ports == {"http": target.port, "agent": agent.listen_port} == {"http": TARGET_PORT,
                                                                         "agent": DEFAULT_LISTEN_PORT}
    assert urlsplit(adapter.base_url).hostname == urlsplit(adapter.process.value).hostname == "rtcap-target"
    assert by_kind("Deployment", "rtcap-target")["spec"]["template"]["spec"]["shareProcessNamespace"] is True
    daemon = parse(commands["DaemonSet/rtcap-agent/agent"])
    assert daemon.listen_port == DEFAULT_LISTEN_PORT and daemon.bind == K8S_ENV["NODE_IP"]


def test_the_three_machine_recipe_is_consistent(tmp_path: Path) -> None:
    commands = {argv[0] if argv[0] != "target" else "target serve": parse(argv) for argv in readme_commands()}
    run, worker, agent, target = (commands[k] for k in ("run", "worker", "agent", "target serve"))
    adapter = load_adapter(readme_adapter(tmp_path))
    assert worker.master == (run.master_bind_host, MASTER_PORT)
    assert run.expect_workers == 2 * worker.processes  # one `rtcap worker` on B and one on C
    served = f"http://{target.host}:{target.port}"
    assert run.host == adapter.base_url == served and agent.port == target.port
    assert adapter.process.value == f"http://{agent.bind}:{agent.listen_port}"
    assert agent.listen_port == DEFAULT_LISTEN_PORT and adapter.publish.rate == target.rate


def test_the_readme_lists_every_file_and_the_root_readme_links_it() -> None:
    listed = set(re.findall(r"^\| `([\w./-]+)` \|", readme(), re.M))
    present = {p.relative_to(DEPLOY).as_posix() for p in DEPLOY.rglob("*") if p.is_file() and p.name != "README.md"
               and "runs" not in p.relative_to(DEPLOY).parts}
    assert listed == present
    assert "ENTRYPOINT [\"rtcap\"]" in (DEPLOY / "Dockerfile").read_text()
    assert "(loadtests/deploy/README.md)" in (ROOT / "README.md").read_text()
