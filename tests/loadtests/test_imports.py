"""The orchestrating side never imports Locust: importing it patches the whole process for gevent."""

import subprocess
import sys


def test_cli_run_check_and_report_do_not_import_locust_or_gevent() -> None:
    code = (
        "import sys, rtcap.loadtests.cli, rtcap.loadtests.run.sweep, rtcap.loadtests.run.check, rtcap.loadtests.run.collect, rtcap.reports.html\n"
        "rtcap.loadtests.cli.build_parser()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
