"""Plain HTTP requests of the orchestrating process (publisher, health probes): urllib that never redirects.

urllib follows redirects by default, turns a redirected POST into a GET and forwards the request's headers
(an adapter's `Authorization`, say) to whatever host the Location names. A target that redirects is
answering something else than what rtcap asked for, so the 3xx is an answer like any other, raised as
`urllib.error.HTTPError` with its code and Location.
"""

from __future__ import annotations

import urllib.request
from typing import Any


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None  # urllib then raises the 3xx as an HTTPError instead of following it


_OPENER = urllib.request.build_opener(_NoRedirect)


def urlopen(request: urllib.request.Request | str, timeout: float) -> Any:
    """`urllib.request.urlopen` that never follows a redirect."""
    return _OPENER.open(request, timeout=timeout)
