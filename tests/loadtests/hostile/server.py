"""A server that misbehaves on purpose, one named way per path: `GET /<case>[?to=HOST:PORT]`.

The corpus the clients' limits are tested against: garbage, heads and bodies that are huge, endless, slow or
lying, broken chunking, redirects, resets, SSE events and WebSocket frames that are oversized, trickled or
invalid. Run `python -m tests.loadtests.hostile.server [--port N]`: it prints its port on the first line of
stdout, then serves 127.0.0.1 until terminated. Every case ends on its own: streams stop at STREAM_CAP bytes,
trickles and the whole connection at CASE_LIFETIME_S seconds, and a client that goes away ends its case.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import socket
import struct
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

CASE_LIFETIME_S = 20.0
"""No connection lives longer: a client that never gives up still gets its end."""
STREAM_CAP = 48 * 1024 * 1024
"""Bytes an "endless" or "huge" stream sends at most: well past every client limit, still finite."""
TRICKLE_S = 0.2
"""Pause between the bytes of a trickle: far shorter than any read timeout, so only deadlines catch it."""
CHUNK = 64 * 1024
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass
class Exchange:
    """One request and the means to answer it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    headers: dict[str, str]
    to: str  # the `to` query value: where redirects point (a listener the test watches)

    async def send(self, data: bytes) -> None:
        """Write and wait until the kernel took it (a client that left raises ConnectionError)."""
        self.writer.write(data)
        await self.writer.drain()

    async def trickle(self, data: bytes) -> None:
        """Send one byte every TRICKLE_S seconds."""
        for index in range(len(data)):
            await self.send(data[index : index + 1])
            await asyncio.sleep(TRICKLE_S)

    async def stream(self, piece: bytes, total: int = STREAM_CAP, wrap: Callable[[bytes], bytes] = bytes) -> None:
        """Send `piece` (each wrapped, e.g. as a chunk) again and again, `total` bytes of it at most."""
        sent = 0
        while sent < total:
            await self.send(wrap(piece))
            sent += len(piece)

    async def reset(self) -> None:
        """Drop the connection with a TCP reset instead of a clean close."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def websocket_handshake(self) -> None:
        """Accept the WebSocket handshake properly (the frames that follow are the misbehaviour)."""
        accept = base64.b64encode(hashlib.sha1((self.headers["sec-websocket-key"] + WS_GUID).encode()).digest())
        await self.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")


Case = Callable[[Exchange], Awaitable[None]]
CASES: dict[str, Case] = {}


def case(name: str) -> Callable[[Case], Case]:
    """Register a misbehaviour under the path /<name>."""

    def register(handler: Case) -> Case:
        CASES[name] = handler
        return handler

    return register


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def frame(opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0, length: int | None = None) -> bytes:
    """An unmasked server frame; `length` may lie about (or only announce) the payload."""
    length = len(payload) if length is None else length
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    if length < 126:
        header = struct.pack("!BB", first, length)
    elif length < 65536:
        header = struct.pack("!BBH", first, 126, length)
    else:
        header = struct.pack("!BBQ", first, 127, length)
    return header + payload


OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"

# --- plain HTTP answers (polls, fetches) ---


@case("http-garbage")
async def _(x: Exchange) -> None:
    await x.send(bytes(range(256)) * 4)


@case("http-09")
async def _(x: Exchange) -> None:
    await x.send(b'{"events": []}\n')  # HTTP/0.9: a body with no status line, then close


@case("http-huge-head")
async def _(x: Exchange) -> None:
    await x.send(b"HTTP/1.1 200 OK\r\n")
    await x.stream(b"X-Pad: " + b"p" * 1000 + b"\r\n")


@case("http-endless-header-line")
async def _(x: Exchange) -> None:
    await x.send(b"HTTP/1.1 200 OK\r\nX-Endless: ")
    await x.stream(b"e" * CHUNK)


@case("http-slow-head")
async def _(x: Exchange) -> None:
    await x.trickle(b"HTTP/1.1 200 OK\r\nX-Slow: " + b"s" * 1000)


@case("http-silent-after-head")
async def _(x: Exchange) -> None:
    await x.send(OK_HEAD + b"Content-Length: 100\r\n\r\n")
    await asyncio.sleep(CASE_LIFETIME_S)


@case("http-slow-body")
async def _(x: Exchange) -> None:
    await x.send(OK_HEAD + b"Content-Length: 1000\r\n\r\n")
    await x.trickle(b"b" * 1000)


@case("http-gigabyte-content-length")
async def _(x: Exchange) -> None:
    await x.send(OK_HEAD + b"Content-Length: 1073741824\r\n\r\n")
    for _ in range(int(CASE_LIFETIME_S / TRICKLE_S)):
        await x.send(b"g" * CHUNK)
        await asyncio.sleep(TRICKLE_S)


@case("http-endless-chunked")
async def _(x: Exchange) -> None:
    await x.send(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
    await x.stream(b"c" * CHUNK, wrap=chunk)


@case("http-endless-close-delimited")
async def _(x: Exchange) -> None:
    await x.send(OK_HEAD + b"Connection: close\r\n\r\n")
    await x.stream(b"d" * CHUNK)


@case("http-lying-content-length")
async def _(x: Exchange) -> None:
    await x.send(OK_HEAD + b"Content-Length: 1000\r\n\r\n" + b'{"events": []}')  # then close, 986 bytes short


@case("http-extra-body")
async def _(x: Exchange) -> None:
    # Content-Length says 2, 50 bytes follow: the surplus is what the next request on the connection reads.
    await x.send(OK_HEAD + b"Content-Length: 2\r\n\r\n{}" + b"surplus " * 6 + b"\r\n\r\n")
    await x.reader.read(CHUNK)  # the next request
    await asyncio.sleep(CASE_LIFETIME_S)


@case("http-bad-chunk-size")
async def _(x: Exchange) -> None:
    await x.send(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunk(b"{") + b"zz\r\n}\r\n0\r\n\r\n")


@case("http-huge-chunk-header")
async def _(x: Exchange) -> None:
    await x.send(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n10;ext=")
    await x.stream(b"x" * CHUNK)


@case("http-redirect-away")
async def _(x: Exchange) -> None:
    await x.send(b"HTTP/1.1 302 Found\r\nLocation: http://%s/poll\r\nContent-Length: 0\r\n\r\n" % x.to.encode())


@case("http-redirect-loop")
async def _(x: Exchange) -> None:
    await x.send(b"HTTP/1.1 301 Moved Permanently\r\nLocation: /http-redirect-loop\r\nContent-Length: 0\r\n\r\n")


@case("http-reset-mid-body")
async def _(x: Exchange) -> None:
    await x.send(OK_HEAD + b"Content-Length: 1000\r\n\r\n" + b'{"events": [')
    await x.reset()


@case("http-101-no-upgrade")
async def _(x: Exchange) -> None:
    await x.send(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")


@case("http-close-at-once")
async def _(x: Exchange) -> None:
    x.writer.close()


@case("http-informational-flood")
async def _(x: Exchange) -> None:
    for _ in range(int(CASE_LIFETIME_S / 0.01)):
        await x.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        await asyncio.sleep(0.01)


# --- Server-Sent Events ---


@case("sse-huge-event")
async def _(x: Exchange) -> None:
    await x.send(SSE_HEAD + chunk(b"id: 1\ndata: "))
    await x.stream(b"h" * CHUNK, total=16 * 1024 * 1024, wrap=chunk)
    await x.send(chunk(b"\n\n") + b"0\r\n\r\n")


@case("sse-huge-multiline-event")
async def _(x: Exchange) -> None:
    await x.send(SSE_HEAD)
    await x.stream(b"data: " + b"m" * 1000 + b"\n", wrap=chunk)  # no blank line: one event, ever growing


@case("sse-endless-line")
async def _(x: Exchange) -> None:
    await x.send(SSE_HEAD + chunk(b"data: "))
    await x.stream(b"e" * CHUNK, wrap=chunk)


@case("sse-trickle")
async def _(x: Exchange) -> None:
    await x.send(SSE_HEAD)
    for byte in b"data: " + b"t" * 1000:
        await x.send(chunk(bytes([byte])))
        await asyncio.sleep(TRICKLE_S)


@case("sse-invalid-utf8")
async def _(x: Exchange) -> None:
    await x.send(SSE_HEAD + chunk(b'id: 1\ndata: {"seq": 1, "text": "\xff\xfe\xc3"}\n\n') + b"0\r\n\r\n")


@case("sse-not-event-stream")
async def _(x: Exchange) -> None:
    await x.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 13\r\n\r\n<html></html>")


@case("sse-redirect-away")
async def _(x: Exchange) -> None:
    await x.send(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://%s/sse\r\nContent-Length: 0\r\n\r\n"
                 % x.to.encode())


@case("sse-bad-chunk")
async def _(x: Exchange) -> None:
    await x.send(SSE_HEAD + chunk(b"id: 1\ndata: {}\n\n") + b"not-hex\r\n\r\n")
    await asyncio.sleep(CASE_LIFETIME_S)


@case("sse-slow-head")
async def _(x: Exchange) -> None:
    await x.trickle(SSE_HEAD)


@case("sse-reset-mid-event")
async def _(x: Exchange) -> None:
    await x.send(SSE_HEAD + chunk(b"id: 1\ndata: {\"seq\""))
    await x.reset()


# --- WebSockets ---


@case("ws-huge-frame")
async def _(x: Exchange) -> None:
    await x.websocket_handshake()
    await x.send(frame(0x1, length=16 * 1024 * 1024))
    await x.stream(b"w" * CHUNK, total=16 * 1024 * 1024)


@case("ws-huge-fragmented")
async def _(x: Exchange) -> None:
    await x.websocket_handshake()
    await x.send(frame(0x1, b"f" * CHUNK, fin=False))
    await x.stream(b"f" * CHUNK, wrap=lambda piece: frame(0x0, piece, fin=False))


@case("ws-tiny-fragments")
async def _(x: Exchange) -> None:
    # A message just under the limit in 64-byte fragments: legal, and it must not cost quadratic time.
    size = 1024 * 1024 - 1024
    await x.websocket_handshake()
    await x.send(frame(0x1, b"[" + b" " * 63, fin=False))
    await x.send(b"".join(frame(0x0, b" " * 64, fin=False) for _ in range(size // 64 - 2)))
    await x.send(frame(0x0, b" " * 63 + b"]") + frame(0x8, struct.pack("!H", 1000)))


@case("ws-huge-ping")
async def _(x: Exchange) -> None:
    await x.websocket_handshake()
    await x.send(frame(0x9, length=1 << 62))
    await asyncio.sleep(CASE_LIFETIME_S)


@case("ws-binary-invalid-utf8")
async def _(x: Exchange) -> None:
    await x.websocket_handshake()
    await x.send(frame(0x2, b'{"seq": 1, "x": "\xff\xfe"}'))
    await asyncio.sleep(CASE_LIFETIME_S)


@case("ws-text-invalid-utf8")
async def _(x: Exchange) -> None:
    await x.websocket_handshake()
    await x.send(frame(0x1, b'{"seq": 1, "x": "\xff\xfe"}'))
    await asyncio.sleep(CASE_LIFETIME_S)


@case("ws-close-storm")
async def _(x: Exchange) -> None:
    await x.websocket_handshake()
    await x.send(frame(0x8, struct.pack("!H", 1001) + b"bye") * 100)


@case("ws-reset-mid-frame")
async def _(x: Exchange) -> None:
    await x.websocket_handshake()
    await x.send(frame(0x1, length=1000) + b'{"seq": 1')
    await x.reset()


@case("ws-101-no-upgrade")
async def _(x: Exchange) -> None:
    await x.send(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
    await asyncio.sleep(CASE_LIFETIME_S)


@case("ws-redirect-away")
async def _(x: Exchange) -> None:
    await x.send(b"HTTP/1.1 302 Found\r\nLocation: ws://%s/ws\r\nContent-Length: 0\r\n\r\n" % x.to.encode())
    await asyncio.sleep(CASE_LIFETIME_S)


@case("ws-slow-handshake")
async def _(x: Exchange) -> None:
    await x.trickle(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nX-Slow: " + b"s" * 1000)


@case("ws-huge-handshake")
async def _(x: Exchange) -> None:
    await x.send(b"HTTP/1.1 101 Switching Protocols\r\n")
    await x.stream(b"X-Pad: " + b"p" * 1000 + b"\r\n")


@case("ws-trickle-frame")
async def _(x: Exchange) -> None:
    await x.websocket_handshake()
    await x.send(frame(0x1, length=1000))
    await x.trickle(b"t" * 1000)


@case("ws-garbage")
async def _(x: Exchange) -> None:
    await x.send(b"\x00\xff\xfe not a handshake \x13\x37\r\n\r\n")


@case("ws-reserved-opcode")
async def _(x: Exchange) -> None:
    await x.websocket_handshake()
    await x.send(frame(0x3, b"reserved"))
    await asyncio.sleep(CASE_LIFETIME_S)


@case("ws-rsv-bits")
async def _(x: Exchange) -> None:
    await x.websocket_handshake()
    await x.send(frame(0x1, b'{"seq": 1}', rsv=0b100))  # RSV1 (compression) never negotiated
    await asyncio.sleep(CASE_LIFETIME_S)


async def serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read one request head, then run the case its path names (404 for an unknown one)."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CASE_LIFETIME_S)
        request_line, *lines = head.decode("latin-1").split("\r\n")
        target = urlsplit(request_line.split(" ")[1])
        headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
        handler = CASES.get(target.path.strip("/"))
        if handler is None:
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        to = parse_qs(target.query).get("to", ["127.0.0.2:9"])[0]
        await asyncio.wait_for(handler(Exchange(reader, writer, headers, to)), CASE_LIFETIME_S)
    except (ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass  # the client left or the case ran its course
    finally:
        writer.close()


async def main(port: int) -> None:
    """Serve until cancelled, announcing the port on stdout."""
    server = await asyncio.start_server(serve_one, "127.0.0.1", port)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    try:
        asyncio.run(main(parser.parse_args().port))
    except KeyboardInterrupt:
        sys.exit(0)
