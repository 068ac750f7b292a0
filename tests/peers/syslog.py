"""A syslog collector standing in for an audit repository, on 127.0.0.1.

It reads RFC 6587 octet-counted frames (``MSG-LEN SP SYSLOG-MSG``) over TCP, or over TLS
(RFC 5425) with a certificate from ``tests.peers.certs``, parses each RFC 5424 message
itself (not with rix's code) and keeps them in arrival order. ``stop`` closes the
listener and every connection, as a repository going down does; ``start`` listens again
on the same port.
"""

from __future__ import annotations

import re
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from tests.peers.certs import Identity

_HEADER = re.compile(
    rb"<(?P<pri>\d{1,3})>(?P<version>\d{1,2}) (?P<timestamp>\S+) (?P<hostname>\S+) "
    rb"(?P<app_name>\S+) (?P<procid>\S+) (?P<msgid>\S+) (?P<sd>-|\[.*?\])(?: (?P<msg>.*))?\Z",
    re.DOTALL,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SyslogMessage:
    """One RFC 5424 message as received (6: HEADER SP STRUCTURED-DATA [SP MSG])."""

    pri: int
    version: str
    timestamp: str
    hostname: str
    app_name: str
    procid: str
    msgid: str
    structured_data: str
    msg: bytes

    @property
    def facility(self) -> int:
        return self.pri // 8

    @property
    def severity(self) -> int:
        return self.pri % 8

    @classmethod
    def parse(cls, raw: bytes) -> SyslogMessage:
        match = _HEADER.match(raw)
        if match is None:
            raise ValueError(f"not an RFC 5424 message: {raw[:80]!r}")
        text = {k: v.decode("ascii") for k, v in match.groupdict().items() if k != "msg" and v}
        return cls(
            pri=int(text["pri"]),
            version=text["version"],
            timestamp=text["timestamp"],
            hostname=text["hostname"],
            app_name=text["app_name"],
            procid=text["procid"],
            msgid=text["msgid"],
            structured_data=text["sd"],
            msg=match.group("msg") or b"",
        )


def split_frames(buffer: bytearray) -> list[bytes]:
    """Take every complete octet-counted frame off the front of ``buffer``."""
    frames: list[bytes] = []
    while True:
        space = buffer.find(b" ")
        if space < 0:
            return frames
        length = buffer[:space]
        if not length.isdigit() or length.startswith(b"0"):
            raise ValueError(f"bad MSG-LEN {bytes(length[:20])!r}")
        end = space + 1 + int(length)
        if len(buffer) < end:
            return frames
        frames.append(bytes(buffer[space + 1 : end]))
        del buffer[:end]


class SyslogCollector:
    """A TCP (or TLS, with ``identity``) syslog server thread keeping what it receives."""

    def __init__(self, port: int = 0, identity: Identity | None = None) -> None:
        self.port = port
        self.identity = identity
        self.errors: list[str] = []
        self._messages: list[SyslogMessage] = []
        self._arrived = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None

    @property
    def messages(self) -> list[SyslogMessage]:
        with self._arrived:
            return list(self._messages)

    def start(self) -> SyslogCollector:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        listener.settimeout(0.05)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._stop.clear()
        self._spawn(self._accept, listener)
        return self

    def stop(self) -> None:
        """Close the listener and every connection; returns once they are closed."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def wait_for(self, count: int, timeout: float = 10.0) -> list[SyslogMessage]:
        """The messages once at least ``count`` have arrived, or all there are at timeout."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self._messages) < count and time.monotonic() < deadline:
                self._arrived.wait(deadline - time.monotonic())
            return list(self._messages)

    def wait_for_errors(self, count: int, timeout: float = 10.0) -> list[str]:
        """The connection errors (a refused TLS handshake, a bad frame) once ``count``."""
        deadline = time.monotonic() + timeout
        while len(self.errors) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.errors)

    def __enter__(self) -> SyslogCollector:
        return self.start()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _spawn(self, target: Callable[[socket.socket], None], sock: socket.socket) -> None:
        thread = threading.Thread(target=target, args=(sock,), daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            self._spawn(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.identity is not None:
                conn = self._tls(conn)
            conn.settimeout(0.05)
            self._read(conn)
        except (OSError, ValueError) as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()

    def _tls(self, conn: socket.socket) -> socket.socket:
        assert self.identity is not None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.identity.cert, self.identity.key)
        conn.settimeout(5)
        return context.wrap_socket(conn, server_side=True)

    def _read(self, conn: socket.socket) -> None:
        buffer = bytearray()
        while not self._stop.is_set():
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            if not data:
                return
            buffer += data
            received = [SyslogMessage.parse(frame) for frame in split_frames(buffer)]
            with self._arrived:
                self._messages.extend(received)
                self._arrived.notify_all()
        if buffer:  # part of a message not kept: reset, as a TCP closed with data unread does
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
