"""A webhook on loopback that keeps the JSON body of every POST it is sent."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Recorder:
    """``http.server`` in a thread; answers 204 after ``delay`` seconds (a slow receiver
    keeps several workers busy at once)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.bodies: list[Any] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                time.sleep(recorder.delay)
                with recorder._lock:
                    recorder.bodies.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def received(self) -> list[Any]:
        with self._lock:
            return list(self.bodies)

    def wait_for(self, count: int, timeout: float) -> list[Any]:
        """The bodies, once at least ``count`` arrived (or the timeout passed)."""
        deadline = time.monotonic() + timeout
        while len(self.received()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.received()

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
