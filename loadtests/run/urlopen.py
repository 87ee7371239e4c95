"""Plain HTTP requests of the orchestrating process (publisher, health probes): urllib on rtcap's redirect terms.

urllib follows redirects by default, turns a redirected POST into a GET and forwards the request's headers
(an adapter's `Authorization`, say) to whatever host the Location names. A target that redirects is
answering something else than what rtcap asked for, so by default the 3xx is an answer like any other,
raised as `urllib.error.HTTPError` with its code and Location.

With `follow_redirects` (the adapter's opt-in, which only the publisher passes) a redirect is followed on the
terms of loadtests/transports/http_client.py: same origin only, at most REDIRECT_HOPS. A request other than GET or HEAD
follows only 307 and 308, which keep its method and body; 301, 302 and 303 would turn it into a GET (urllib
does exactly that), so they are refused rather than publishing nothing while reporting success.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

from rtcap.loadtests.transports.http_client import RedirectNotFollowed, hop_headers, redirect_target
from rtcap.loadtests.transports.limits import REDIRECT_STATUSES

METHOD_KEEPING = frozenset({307, 308})
"""Redirects that tell the client to repeat the request as it was, method and body included."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None  # urllib then raises the 3xx as an HTTPError instead of following it


_OPENER = urllib.request.build_opener(_NoRedirect)


def urlopen(request: urllib.request.Request | str, timeout: float, follow_redirects: bool = False) -> Any:
    """`urllib.request.urlopen` that follows no redirect, or with `follow_redirects` only same-origin ones
    (RedirectNotFollowed, an OSError, for any other)."""
    if isinstance(request, str):
        request = urllib.request.Request(request)
    hops = 0
    while True:
        try:
            return _OPENER.open(request, timeout=timeout)
        except urllib.error.HTTPError as answer:
            if not follow_redirects or answer.code not in REDIRECT_STATUSES:
                raise
            answer.close()
            hops += 1
            request = _next_request(request, answer, hops)


def _next_request(request: urllib.request.Request, answer: urllib.error.HTTPError, hop: int) -> urllib.request.Request:
    """The request repeated where a redirect points: same method, body and headers, or RedirectNotFollowed."""
    url, method, status = request.full_url, request.get_method(), answer.code
    target = redirect_target(status, answer.headers.get("Location"), url, hop)
    if method not in ("GET", "HEAD") and status not in METHOD_KEEPING:
        raise RedirectNotFollowed(f"HTTP {status} from {url}: redirected to {target}, which would turn the {method} "
                                  "into a GET; only 307 and 308 keep the method and body", status)
    # The target is on the request's origin (redirect_target refused any other), so the credentials it
    # already carries go with it; hop_headers would strip them before they crossed to another origin.
    return urllib.request.Request(target, data=request.data, method=method,
                                  headers=hop_headers(dict(request.headers), url, target))
