"""Redirects: refused by default; with an adapter's `follow_redirects = true`, followed on the same origin only.

Real stdlib http.server processes answer on 127.0.0.1 (the target's origin) and on 127.0.0.2 (another
origin). Each logs every request it gets before answering it, so once a client has its answer (or its error)
the logs say exactly which requests reached which origin, with which headers and body.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import pytest

from rtcap.bench.proxy import CutProxy
from rtcap.loadtests.transports.http_client import HTTPConnection, TooManyRedirects, hop_headers
from rtcap.loadtests.transports.limits import RedirectRefused
from rtcap.loadtests.transports.polling import bind_http_user
from rtcap.loadtests.run.publisher import PublishError, publish_once
from rtcap.targets.adapter import AdapterError, TargetAdapter, load_adapter

SERVER = r'''
"""Answers each path as its name says, after appending the request to the log (argv[2])."""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

host, log_path = sys.argv[1], sys.argv[2]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so a followed redirect can reuse the connection
    disable_nagle_algorithm = True  # head and body are two writes: no delayed-ACK stall between them

    def do_GET(self):
        self.answer()

    def do_POST(self):
        self.answer()

    def answer(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(json.dumps({"method": self.command, "path": self.path, "port": self.client_address[1],
                                  "headers": {k.lower(): v for k, v in self.headers.items()},
                                  "body": body.decode()}) + "\n")
        parts = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        status, headers, payload = 200, {}, b'{"events": [], "at": "%s"}' % parts.path.encode()
        if parts.path == "/go":  # /go?status=S&to=LOCATION[&close=1]
            status, headers, payload = int(query["status"]), {"Location": query["to"]}, b"moved"
            if "close" in query:
                headers["Connection"] = "close"
        elif parts.path == "/loop":  # /loop[?status=S]: back to itself
            status, headers, payload = int(query.get("status", "302")), {"Location": self.path}, b"again"
        elif parts.path == "/chain" and int(query["n"]) > 0:  # n more redirects, then 200
            status, headers, payload = 302, {"Location": "/chain?n=%d" % (int(query["n"]) - 1)}, b"on"
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_args):
        pass


server = ThreadingHTTPServer((host, 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
'''

SECRETS = {"Authorization": "Bearer s3cret", "Cookie": "sid=42"}


@dataclass
class Origin:
    """One logging server: its base URL and the requests it has received."""

    url: str
    log: Path

    def requests(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text(encoding="utf-8").splitlines()]

    def paths(self) -> list[str]:
        return [f"{r['method']} {r['path']}" for r in self.requests()]


def _serve(host: str, directory: Path) -> Iterator[Origin]:
    script = directory / "origin_server.py"
    script.write_text(SERVER, encoding="utf-8")
    log = directory / f"{host}.jsonl"
    log.write_text("", encoding="utf-8")
    process = subprocess.Popen([sys.executable, str(script), host, str(log)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())  # printed once the socket listens
        yield Origin(f"http://{host}:{port}", log)
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origin]:
    """The target's origin."""
    yield from _serve("127.0.0.1", tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origin]:
    """Another origin, which no request may ever reach."""
    yield from _serve("127.0.0.2", tmp_path_factory.mktemp("other"))


@pytest.fixture(autouse=True)
def fresh_logs(home: Origin, other: Origin) -> None:
    for origin in (home, other):
        origin.log.write_text("", encoding="utf-8")


def go(base: str, status: int, to: str, close: bool = False) -> str:
    """A URL on `base` answering `status` with Location `to`."""
    return f"{base}/go?status={status}&to={quote(to, safe='')}" + ("&close=1" if close else "")


def adapter(tmp_path: Path, base_url: str, publish_url: str, follow: bool | str = True) -> TargetAdapter:
    """An adapter file with the flag (TOML `true`/`false`, or a raw value), credentials and a JSON publish."""
    flag = json.dumps(follow) if isinstance(follow, bool) else follow
    path = tmp_path / "redirects.toml"
    path.write_text(f'''name = "redirects"
base_url = "{base_url}"
follow_redirects = {flag}
headers = {{ Authorization = "{SECRETS['Authorization']}", Cookie = "{SECRETS['Cookie']}" }}
[publish]
mode = "http"
url = "{publish_url}"
headers = {{ Content-Type = "application/json" }}
body = '{{{{"seq": {{seq}}}}}}'
[transports.poll]
url = "/chain?n=1&since={{cursor}}"
''', encoding="utf-8")
    return load_adapter(path)


# --- polls and fetches -------------------------------------------------------------------------------


def test_by_default_a_same_origin_redirect_is_refused(home: Origin) -> None:
    http = HTTPConnection(home.url, timeout=5)
    with pytest.raises(RedirectRefused, match=r"HTTP 302 .*redirected to /final; redirects are not followed"):
        http.get(go(home.url, 302, "/final"))
    http.close()
    assert home.paths() == ["GET /go?status=302&to=%2Ffinal"]


@pytest.mark.parametrize("close", [False, True], ids=["keep-alive", "server-closes"])
def test_opt_in_follows_a_same_origin_302_and_counts_the_bytes_of_both_hops(home: Origin, close: bool) -> None:
    host, port = home.url.removeprefix("http://").rsplit(":", 1)
    proxy = CutProxy(host, int(port))  # counts what really crossed the wire, independently of the client
    base = f"http://127.0.0.1:{proxy.port}"
    http = HTTPConnection(base, timeout=5, follow_redirects=True)
    try:
        response = http.get(go(base, 302, "/final", close), SECRETS)
        assert (response.status, response.redirects, json.loads(response.body)["at"]) == (200, 1, "/final")
        first, second = home.requests()
        assert [first["path"].split("?")[0], second["path"]] == ["/go", "/final"]
        # Same keep-alive connection when the server allows it, a new one when it closed after the 302.
        assert http.connects == (2 if close else 1)
        assert (first["port"] == second["port"]) is not close
        assert {k: second["headers"][k.lower()] for k in SECRETS} == SECRETS  # same origin: credentials kept
        http.close()
        assert proxy.wait_idle(5) == http.byte_counts  # every byte of both hops, both ways
    finally:
        http.close()
        proxy.close()
    # The 302 exchange is in the count: more than the final answer's exchange alone.
    direct = HTTPConnection(home.url, timeout=5)
    direct.get(f"{home.url}/final", SECRETS)
    direct.close()
    assert http.byte_counts[1] > direct.byte_counts[1] and http.byte_counts[0] > direct.byte_counts[0]


def test_opt_in_refuses_a_redirect_to_another_origin(home: Origin, other: Origin) -> None:
    http = HTTPConnection(home.url, timeout=5, follow_redirects=True)
    with pytest.raises(RedirectRefused, match=rf"redirected to {other.url}/final, which leaves the origin "
                                              rf"{home.url}; only same-origin"):
        http.get(go(home.url, 302, f"{other.url}/final"), SECRETS)
    http.close()
    assert len(home.requests()) == 1
    assert other.requests() == []  # no request, so no Authorization or Cookie, reached the other origin


@pytest.mark.parametrize(("location", "elsewhere"), [("//127.0.0.2:{port}/final", True),
                                                      ("https://127.0.0.1:{port}/final", False),
                                                      ("http://localhost:{port}/final", False),
                                                      ("http://127.0.0.1:1/final", False)],
                         ids=["host", "scheme", "host-name", "port"])
def test_another_scheme_host_or_port_is_another_origin(home: Origin, other: Origin, location: str,
                                                       elsewhere: bool) -> None:
    port = (other if elsewhere else home).url.rsplit(":", 1)[1]
    http = HTTPConnection(home.url, timeout=5, follow_redirects=True)
    with pytest.raises(RedirectRefused, match="leaves the origin"):
        http.get(go(home.url, 301, location.format(port=port)))
    http.close()
    assert len(home.requests()) == 1 and other.requests() == []


def test_at_most_five_hops_then_a_named_error(home: Origin) -> None:
    http = HTTPConnection(home.url, timeout=5, follow_redirects=True)
    assert http.get(f"{home.url}/chain?n=5").redirects == 5
    assert http.connects == 1
    with pytest.raises(TooManyRedirects, match=r"past the 5 redirects followed per request \(a redirect loop\?\)"):
        http.get(f"{home.url}/loop")
    http.close()
    assert home.paths()[6:] == ["GET /loop"] * 6  # the request and 5 hops; the 6th redirect is not followed


def test_hop_headers_never_carry_credentials_to_another_origin() -> None:
    headers = {**SECRETS, "proxy-authorization": "Basic x", "If-None-Match": '"7"'}
    assert hop_headers(headers, "http://127.0.0.1:80/a", "http://127.0.0.1/b") == headers
    assert hop_headers(headers, "http://127.0.0.1:8000/a", "http://127.0.0.2:8000/a") == {"If-None-Match": '"7"'}


# --- the publisher -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [307, 308])
def test_publisher_follows_a_same_origin_307_or_308_keeping_post_and_body(home: Origin, tmp_path: Path,
                                                                           status: int) -> None:
    spec = adapter(tmp_path, home.url, f"/go?status={status}&to=%2Fpublish").publish
    publish_once(spec, 77, "live")
    first, second = home.requests()
    assert (first["method"], second["method"], second["path"]) == ("POST", "POST", "/publish")
    assert json.loads(first["body"]) == json.loads(second["body"]) == {"seq": 77}
    assert second["headers"]["content-type"] == "application/json"
    assert {k: second["headers"][k.lower()] for k in SECRETS} == SECRETS  # same origin: credentials kept


@pytest.mark.parametrize("status", [301, 302, 303])
def test_publisher_refuses_a_method_changing_redirect_of_a_post(home: Origin, tmp_path: Path, status: int) -> None:
    spec = adapter(tmp_path, home.url, f"/go?status={status}&to=%2Fpublish").publish
    with pytest.raises(PublishError, match=rf"HTTP {status} .*which would turn the POST into a GET") as caught:
        publish_once(spec, 1, "live")
    assert caught.value.status == status
    assert home.paths() == [f"POST /go?status={status}&to=%2Fpublish"]  # no GET, no POST to /publish


def test_publisher_refuses_another_origin_and_names_a_loop(home: Origin, other: Origin, tmp_path: Path) -> None:
    away = adapter(tmp_path, home.url, go("", 307, f"{other.url}/publish")).publish
    with pytest.raises(PublishError, match=rf"which leaves the origin {home.url}"):
        publish_once(away, 1, "live")
    assert other.requests() == []
    loop = adapter(tmp_path, home.url, "/loop?status=307").publish
    with pytest.raises(PublishError, match="past the 5 redirects") as caught:
        publish_once(loop, 2, "live")
    assert isinstance(caught.value.__cause__, TooManyRedirects)
    loops = home.requests()[1:]  # after the refused POST /go: the request and 5 hops, each a POST with its body
    assert [(r["method"], r["path"], r["body"]) for r in loops] == [("POST", "/loop?status=307", '{"seq": 2}')] * 6


def test_publisher_by_default_refuses_a_307(home: Origin, tmp_path: Path) -> None:
    spec = adapter(tmp_path, home.url, "/go?status=307&to=%2Fpublish", follow=False).publish
    with pytest.raises(PublishError, match=r"answered 307: redirected to /publish \(redirects are not followed\)"):
        publish_once(spec, 1, "live")
    assert len(home.requests()) == 1


# --- the adapter key and how the users and the publisher get it --------------------------------------


def test_the_flag_is_an_adapter_key_off_by_default(tmp_path: Path) -> None:
    on = adapter(tmp_path, "http://127.0.0.1:9000", "/publish")
    assert on.follow_redirects and on.publish.follow_redirects
    moved = on.with_port(9001).with_base_url("http://127.0.0.1:9002")
    assert moved.follow_redirects and moved.publish.follow_redirects
    text = (tmp_path / "redirects.toml").read_text().replace("follow_redirects = true\n", "")
    (tmp_path / "redirects.toml").write_text(text)
    off = load_adapter(tmp_path / "redirects.toml")
    assert not off.follow_redirects and not off.publish.follow_redirects
    with pytest.raises(AdapterError, match=re.escape("follow_redirects: expected true or false, got string 'yes'")):
        adapter(tmp_path, "http://127.0.0.1:9000", "/publish", follow='"yes"')


@pytest.mark.parametrize("follow", [True, False])
def test_polling_users_get_the_adapters_flag(home: Origin, tmp_path: Path, follow: bool) -> None:
    path = adapter(tmp_path, home.url, "/publish", follow).source
    user = SimpleNamespace(environment=SimpleNamespace(parsed_options=SimpleNamespace(target=str(path)), host=""),
                           transport="poll")
    bind_http_user(user)
    assert user.http.follow_redirects is follow
    url = user.adapter.url_for("poll", cursor=0)  # /chain?n=1: one redirect, then the answer
    try:
        if follow:
            assert user.http.get(url).status == 200
        else:
            with pytest.raises(RedirectRefused):
                user.http.get(url)
    finally:
        user.http.close()
