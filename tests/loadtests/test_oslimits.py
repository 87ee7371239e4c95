"""This machine's limits against the largest step (loadtests/run/oslimits.py): refused before any load, exit 2,
one line with the numbers and the fix. No test here starts load (test_cli_validation's no_load fixture)."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest

from rtcap.loadtests.cli import main
from rtcap.loadtests.run import oslimits
from rtcap.loadtests.run.oslimits import HostLimits, LimitRefused
from tests.loadtests.test_cli_validation import LoadStarted, no_load, one_line

pytestmark = pytest.mark.usefixtures(no_load.__name__)  # every way of starting load raises LoadStarted

BOX = HostLimits(open_files_soft=20_000, open_files_hard=20_000, ports=(32768, 60999), somaxconn=4096)
"""This machine as the brief describes it: 28,232 ports per source address, 20,000 open files."""


def refusal(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one stderr line `rtcap run ARGV` refuses with (exit 2)."""
    return one_line(["run", *argv], capsys)


def fake_proc(root: Path, ports: str = "32768\t60999", somaxconn: str = "4096") -> Path:
    (root / "sys/net/ipv4").mkdir(parents=True)
    (root / "sys/net/core").mkdir(parents=True)
    (root / "sys/net/ipv4/ip_local_port_range").write_text(ports + "\n")
    (root / "sys/net/core/somaxconn").write_text(somaxconn + "\n")
    return root


def test_reads_the_port_range_the_backlog_and_the_open_file_limit(tmp_path: Path) -> None:
    limits = oslimits.read_host_limits(fake_proc(tmp_path))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert limits.ports == (32768, 60999) and limits.port_count == 28_232 and limits.somaxconn == 4096
    assert (limits.open_files_soft, limits.open_files_hard) == (soft, hard)
    assert oslimits.read_host_limits(tmp_path / "absent").ports is None  # no /proc: the checks that need it pass


def test_this_process_open_file_limit_is_read_from_proc() -> None:
    assert oslimits.process_open_files(os.getpid()) == resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def test_connections_per_source_address_must_fit_the_port_range() -> None:
    oslimits.check_ports([28_000], ["sse"], 1, BOX)
    with pytest.raises(LimitRefused) as refused:
        oslimits.check_ports([30_000], ["sse"], 1, BOX)
    message = str(refused.value)
    assert "30,000 connections, 30,000 per source address" in message
    assert "net.ipv4.ip_local_port_range 32768 60999 gives each source address 28,232 ports" in message
    assert "--source-ips (at least 2 addresses" in message and "sysctl -w net.ipv4.ip_local_port_range" in message
    oslimits.check_ports([30_000], ["sse"], 2, BOX)
    with pytest.raises(LimitRefused, match="30,000 connections"):  # signalling users hold two connections each
        oslimits.check_ports([15_000], ["signal"], 1, BOX)


def test_the_backlog_must_hold_a_spawn_burst_not_the_whole_step() -> None:
    oslimits.check_backlog([100_000], ["ws"], 100.0, BOX)  # 100 connects a second, never 100,000 at once
    with pytest.raises(LimitRefused) as refused:
        oslimits.check_backlog([10_000], ["ws"], 5_000.0, BOX)
    assert "net.core.somaxconn is 4,096" in str(refused.value) and "sysctl -w net.core.somaxconn=5000" in str(refused.value)


def test_a_target_whose_own_limit_is_too_low_is_refused(tmp_path: Path) -> None:
    (tmp_path / "4242").mkdir()
    (tmp_path / "4242" / "limits").write_text(
        "Limit                     Soft Limit           Hard Limit           Units     \n"
        "Max open files            1024                 4096                 files     \n")
    oslimits.check_target_open_files(4242, [900], ["sse"], tmp_path)
    with pytest.raises(LimitRefused) as refused:
        oslimits.check_target_open_files(4242, [2000], ["sse"], tmp_path)
    assert "the target (pid 4242) may open 1,024 files but the largest step needs about 2,100" in str(refused.value)
    assert "LimitNOFILE=2100" in str(refused.value) and "ulimit -n 2100" in str(refused.value)


def test_largest_step_with_one_and_eight_source_addresses() -> None:
    # A target rtcap starts holds every connection in one process: the open-file limit caps the step.
    assert oslimits.largest_step(BOX, ["ws"], sources=1) == 19_900
    assert oslimits.largest_step(BOX, ["ws"], sources=8) == 19_900
    # An external target (--host) and 8 generator processes: ports cap one source address, files do not.
    assert oslimits.largest_step(BOX, ["ws"], processes=8, sources=1, starts_target=False) == 28_132
    assert oslimits.largest_step(BOX, ["ws"], processes=8, sources=8, starts_target=False) == 159_200


# through `rtcap run`'s preflight ----------------------------------------------------------------------------------

def test_run_past_the_ports_of_one_source_address_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    if (oslimits.read_host_limits().port_count or 10**9) > 39_000:
        pytest.skip("this machine's ephemeral port range holds 40,000 connections per source address")
    line = refusal(["--host", "http://127.0.0.1:9", "--transports", "sse", "--steps", "40000", "--processes", "4"],
                   capsys)
    assert line.startswith("rtcap run: error: --steps: the largest step opens 40,000 connections, 40,000 per source")
    assert "--source-ips" in line


def test_spreading_over_source_addresses_lets_the_step_start(tmp_path: Path) -> None:
    if (oslimits.read_host_limits().open_files_hard or 10**9) < 10_100:
        pytest.skip("hard open-file limit too low for 10,000 users per generator process")
    with pytest.raises(LoadStarted):
        main(["run", "--host", "http://127.0.0.1:9", "--transports", "sse", "--steps", "40000", "--processes", "4",
              "--source-ips", "127.0.0.2-127.0.0.3", "--out-dir", str(tmp_path)])


@pytest.mark.parametrize(("argv", "expected"), [
    (["--processes", "2", "--expect-workers", "2"], "--processes forks local workers and --expect-workers waits"),
    (["--master-bind-host", "0.0.0.0"], "--master-bind-host goes with --expect-workers"),
    (["--expect-workers", "2", "--source-ips", "127.0.0.2"], "--source-ips: with --expect-workers the workers"),
    (["--source-ips", "192.0.2.77"], "--source-ips: cannot open connections from 192.0.2.77"),
    (["--expect-workers", "2", "--master-bind-host", "0.0.0.0"], "workers on other machines cannot reach the target"),
])
def test_generator_options_that_do_not_go_together_are_refused(argv: list[str], expected: str,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert expected in refusal(["--steps", "10", *argv], capsys)


@pytest.mark.parametrize(("value", "expected"), [
    ("127.0.0.9-127.0.0.2", "range '127.0.0.9-127.0.0.2' runs backwards"),
    ("127.0.0.300", "'127.0.0.300' is not an IP address"),
    ("10.0.0.0-10.0.8.0", "names more than 1,024 addresses"),
    ("::1-127.0.0.2", "mixes IPv4 and IPv6"),
])
def test_bad_source_addresses_cost_one_line(value: str, expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["run", "--source-ips", value])
    assert done.value.code == 2
    line = capsys.readouterr().err.splitlines()[-1]
    assert line.startswith("rtcap run: error: argument --source-ips:") and expected in line
