"""tests/loadtests/inproc runs in its own, gevent-patched pytest process (see test_inprocess.py)."""

import os

collect_ignore = [] if os.environ.get("RTCAP_INPROC") else ["inproc"]
