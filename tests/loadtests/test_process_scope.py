"""What the sampler counts for a server of several processes that also opens connections of its own."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtcap.loadtests.run.check import check_process, format_table
from rtcap.loadtests.run.observe import probe_for
from rtcap.loadtests.run.sampler import read_sockstat
from rtcap.targets.adapter import load_adapter
from rtcap.targets.launch import free_port

FAMILY = Path(__file__).parent / "faults" / "family.py"


@pytest.fixture
def family() -> Iterator[tuple[int, list[socket.socket]]]:
    """A three-process server on a free port, holding 4 outgoing connections to a listener of the test's."""
    backend = socket.create_server(("127.0.0.1", 0))
    port = free_port()
    launcher = subprocess.Popen([sys.executable, str(FAMILY), "launcher", "--port", str(port), "--connect-to",
                                 str(backend.getsockname()[1]), "--outgoing", "4", "--ballast-mib", "48"],
                                stdout=subprocess.PIPE, text=True, start_new_session=True)
    clients: list[socket.socket] = []
    try:
        assert launcher.stdout is not None and launcher.stdout.readline().strip() == "ready"
        accepted = [backend.accept()[0] for _ in range(4)]
        for _ in range(3):
            client = socket.create_connection(("127.0.0.1", port), timeout=10)
            assert client.recv(2) == b"hi"  # accepted: now the server's own socket
            clients.append(client)
        yield port, clients + accepted
    finally:
        for sock in clients:
            sock.close()
        launcher.kill()
        launcher.wait()
        subprocess.run(["pkill", "-KILL", "-g", str(launcher.pid)], check=False)
        backend.close()


def adapter_for(tmp_path: Path, port: int, scope: str | None):
    text = (f'name = "family"\nbase_url = "http://127.0.0.1:{port}"\n[publish]\nmode = "none"\n'
            f'[transports.sse]\nurl = "/sse"\n[process]\nport = {port}\n'
            + (f'scope = "{scope}"\n' if scope else ""))
    path = tmp_path / f"family-{scope}.toml"
    path.write_text(text, encoding="utf-8")
    return load_adapter(path)


def test_connections_are_the_inbound_ones_and_outgoing_are_counted_apart(tmp_path: Path, family) -> None:
    port, _ = family
    sample = probe_for(adapter_for(tmp_path, port, None)).read(read_sockstat())
    assert (sample.tcp_established, sample.tcp_outgoing) == (3, 4)


def test_group_scope_sums_the_siblings_and_check_target_lists_them(tmp_path: Path, family) -> None:
    port, _ = family
    tree = probe_for(adapter_for(tmp_path, port, None)).read(read_sockstat())
    group_adapter = adapter_for(tmp_path, port, "group")
    group = probe_for(group_adapter).read(read_sockstat())
    assert group.rss_bytes - tree.rss_bytes > 40 * 2**20  # the broker's 48 MiB ballast
    checked = check_process(group_adapter)
    assert checked.ok and len(checked.members) == 3, checked
    table = format_table([], checked)
    assert table.count("sums pid") == 3 and "process group" in table


def test_an_unknown_scope_is_an_adapter_error(tmp_path: Path) -> None:
    from rtcap.targets.adapter import AdapterError

    with pytest.raises(AdapterError, match="process.scope"):
        adapter_for(tmp_path, 8080, "everything")
