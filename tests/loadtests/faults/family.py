"""A server made of several processes, as real deployments are: a launcher, the process holding the port, a
sibling "broker" holding memory. The server also opens outgoing connections (to a backend, as Pushpin's
zurl does), which are not the inbound connections a capacity run measures.

    family.py launcher --port P [--connect-to Q --outgoing N] [--ballast-mib M]
        starts `server` and `broker` in its own process group, prints "ready" once both are up
    family.py server --port P [--connect-to Q --outgoing N]
        accepts and holds connections, greeting each with b"hi"; opens N connections to 127.0.0.1:Q
    family.py broker --ballast-mib M
        holds M MiB of memory
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time


def server(port: int, connect_to: int, outgoing: int) -> None:
    listener = socket.create_server(("127.0.0.1", port))
    held = [socket.create_connection(("127.0.0.1", connect_to)) for _ in range(outgoing if connect_to else 0)]
    print("ready", flush=True)
    while True:
        conn, _ = listener.accept()
        conn.sendall(b"hi")
        held.append(conn)


def broker(ballast_mib: int) -> None:
    ballast = bytearray(ballast_mib << 20)
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1  # touch every page: resident, not just reserved
    print("ready", flush=True)
    while True:
        time.sleep(3600)


def launcher(args: argparse.Namespace) -> None:
    me = [sys.executable, __file__]
    children = [
        subprocess.Popen([*me, "server", "--port", str(args.port), "--connect-to", str(args.connect_to),
                          "--outgoing", str(args.outgoing)], stdout=subprocess.PIPE, text=True),
        subprocess.Popen([*me, "broker", "--ballast-mib", str(args.ballast_mib)], stdout=subprocess.PIPE, text=True),
    ]
    for child in children:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    print("ready", flush=True)
    try:
        children[0].wait()
    finally:
        for child in children:
            child.kill()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["launcher", "server", "broker"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--connect-to", type=int, default=0)
    parser.add_argument("--outgoing", type=int, default=0)
    parser.add_argument("--ballast-mib", type=int, default=40)
    args = parser.parse_args()
    if args.role == "server":
        server(args.port, args.connect_to, args.outgoing)
    elif args.role == "broker":
        broker(args.ballast_mib)
    else:
        launcher(args)


if __name__ == "__main__":
    main()
