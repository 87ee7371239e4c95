"""Concrete Locust users, one per transport; `locustfile.py` exposes them so plain `locust` runs them.

Run one kind by naming it: `locust -f locustfile.py --headless -u 100 -r 50 SSEUser`. Each class is the
`user_class` its transport's record names (targets/transports.py), defined in the record's `user_module` under
rtcap.loadtests.transports; this module puts every one of them in its namespace (where Locust looks for user
classes, skipping abstract ones) and in `__all__`, which is how `rtcap run` and `locustfile.py` pick them. A
record whose module or class is missing fails this import, naming both. Adding a transport needs no edit here.
"""

from __future__ import annotations

import importlib

import locust

from rtcap.loadtests.generator import abort, gate_hooks, hooks, lag, options, webui  # noqa: F401  (options, recorder, lag, gate, UI)
from rtcap.targets.transports import REGISTRY, Transport

USER_PACKAGE = "rtcap.loadtests.transports"
"""Where each record's `user_module` lives."""


def _user_class(record: Transport) -> type:
    """The concrete Locust user `record` names; ImportError naming the module and the class if it is not there."""
    module = importlib.import_module(f"{USER_PACKAGE}.{record.user_module}")
    user = getattr(module, record.user_class, None)
    if not (isinstance(user, type) and issubclass(user, locust.User) and user.abstract is False):
        raise ImportError(f"{module.__name__} defines no concrete Locust user {record.user_class} "
                          f"(the user_class of transport {record.name!r})")
    return user


globals().update({record.user_class: _user_class(record) for record in REGISTRY})

__all__ = [t.user_class for t in REGISTRY]
