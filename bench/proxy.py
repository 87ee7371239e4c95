"""A loopback TCP proxy for tests and benchmarks: counts the bytes each way, can cut every connection at once."""

from __future__ import annotations

import socket
import threading


class CutProxy:
    """Forwards 127.0.0.1:<port> to a target; `cut_all()` resets every open connection."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.bytes_up = 0  # client -> server
        self.bytes_down = 0  # server -> client
        self._count_lock = threading.Lock()
        self.accepted_event = threading.Condition()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._closed = False
        self._pumping = 0
        self.idle = threading.Condition()
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._pairs.append((client, upstream))
            with self.idle:
                self._pumping += 2
            for a, b, up in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(a, b, up), daemon=True).start()
            with self.accepted_event:
                self.accepted += 1
                self.accepted_event.notify_all()

    def _pump(self, source: socket.socket, sink: socket.socket, up: bool) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
                with self._count_lock:
                    if up:
                        self.bytes_up += len(data)
                    else:
                        self.bytes_down += len(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            with self.idle:
                self._pumping -= 1
                self.idle.notify_all()

    def wait_for_connections(self, count: int, timeout: float) -> bool:
        """Block until `count` connections were accepted in total (or the timeout passes)."""
        with self.accepted_event:
            return self.accepted_event.wait_for(lambda: self.accepted >= count, timeout)

    def wait_idle(self, timeout: float) -> tuple[int, int]:
        """Block until every connection has ended both ways (or the timeout passes); return (up, down) bytes."""
        with self.idle:
            self.idle.wait_for(lambda: self._pumping == 0, timeout)
        with self._count_lock:
            return self.bytes_up, self.bytes_down

    def cut_all(self) -> int:
        """Reset every connection open now; return how many were cut."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                try:
                    # shutdown wakes the pump thread blocked in recv(); close alone would not on Linux.
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
                except OSError:
                    pass
        return len(pairs)

    def close(self) -> None:
        """Stop accepting and cut everything."""
        self._closed = True
        self.listener.close()
        self.cut_all()
