"""The main test process stays unpatched by gevent: importing Locust there (which calls monkey.patch_all) would turn
the threads other tests and pytest-xdist's worker channel rely on into greenlets half-way through the run.
Tests that need Locust in their own process live in tests/loadtests/inproc (test_inprocess.py starts them in a
pytest process patched from the start); this plugin fails a test, or the collection, that patches this one.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

MOVE = "imported Locust (gevent patched the test process): move it to tests/loadtests/inproc"


def _patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("threading")


def _watching() -> bool:
    return not os.environ.get("RTCAP_INPROC")  # the in-process suite is patched on purpose


def pytest_collection_finish(session: pytest.Session) -> None:
    if _watching() and _patched():
        raise pytest.UsageError(f"a test module {MOVE}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    before = _patched()
    yield
    if _watching() and _patched() and not before:
        pytest.fail(f"{item.nodeid} {MOVE}", pytrace=False)
