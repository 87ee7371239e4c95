"""Tests that run Locust inside the test process: gevent patches this process before anything else loads.

Locust monkey-patches the standard library when imported; in the main test process that would turn the
threads other tests rely on into greenlets half-way through. So these tests run in their own pytest
process (tests/loadtests/test_inprocess.py starts it), patched from the start as Locust expects.
"""

from gevent import monkey

monkey.patch_all()
