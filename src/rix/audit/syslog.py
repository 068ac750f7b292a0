"""Syslog transport of audit messages: RFC 5424 messages, RFC 6587 framing, TLS (RFC 5425).

IHE ATNA's Record Audit Event [ITI-20] carries one DICOM audit message (PS3.15 A.5) as
the MSG of one syslog message. Over a stream each message is octet-counted (RFC 6587
3.4.1, the only framing RFC 5425 4.3 allows), so an XML body may hold any byte.

Syslog over TCP has no acknowledgement: a write the kernel accepted may still be lost
if the collector goes away before reading it. ``SyslogSender.confirm`` tells a collector
that closed after reading a batch from one that closed without (TCP resets the latter),
so a repository that is stopped loses nothing; one that dies after reading and before
storing can still lose what it read. Only an application-level acknowledgement (RELP)
would close that gap, and ATNA repositories do not speak one.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from urllib.parse import urlsplit

FACILITY_AUTHPRIV = 10  # security/authorization messages: ITI-20 3.20.4.1.2 requires 10
APP_NAME = "rix"
MSGID = "IHE+RFC-3881"  # ITI-20 3.20.4.1.2: the MSGID of every audit message
BOM = b"\xef\xbb\xbf"  # RFC 5424 6.4: a UTF-8 MSG starts with the byte order mark
CONNECT_TIMEOUT = 5.0
SEND_TIMEOUT = 10.0


class Severity(IntEnum):
    """RFC 5424 6.2.1 severities; ITI-20 asks for notice or warning."""

    WARNING = 4
    NOTICE = 5


class Scheme(StrEnum):
    TCP = "tcp"
    TLS = "tls"


@dataclass(frozen=True, slots=True, kw_only=True)
class Destination:
    """Where audit messages go: the ``audit_syslog`` setting, and the CA that signs the
    collector's certificate when the scheme is ``tls``."""

    scheme: Scheme
    host: str
    port: int
    ca: str = ""

    @classmethod
    def parse(cls, url: str, ca: str = "") -> Destination:
        """``tcp://host:port`` or ``tls://host:port``; ``ValueError`` for anything else."""
        parts = urlsplit(url)
        if parts.scheme not in (Scheme.TCP, Scheme.TLS) or not parts.hostname:
            raise ValueError("an audit syslog destination is tcp://host:port or tls://host:port")
        if parts.port is None:
            raise ValueError("an audit syslog destination needs a port")
        return cls(scheme=Scheme(parts.scheme), host=parts.hostname, port=parts.port, ca=ca)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def message(
    body: bytes,
    *,
    timestamp: float,
    hostname: str,
    severity: Severity,
    facility: int = FACILITY_AUTHPRIV,
) -> bytes:
    """One RFC 5424 SYSLOG-MSG: ``<PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID - BOM body``.

    No structured data and no PROCID, so the same event sent twice gives the same bytes
    from the same host. ``timestamp`` is when the audited event happened (RFC 5424 6.2.3,
    UTC with milliseconds), not when it left the spool.
    """
    when = datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="milliseconds")
    fields = [
        f"<{facility * 8 + severity}>1",
        when.replace("+00:00", "Z"),
        header_field(hostname, 255),
        APP_NAME,
        "-",
        MSGID,
        "-",
    ]
    return " ".join(fields).encode("ascii") + b" " + BOM + body


def header_field(value: str, limit: int) -> str:
    """An RFC 5424 6 header field: 1 to ``limit`` printable US-ASCII characters, or ``-``."""
    printable = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return printable or "-"


def frame(syslog_message: bytes) -> bytes:
    """RFC 6587 3.4.1 octet counting: ``MSG-LEN SP SYSLOG-MSG``."""
    return b"%d %s" % (len(syslog_message), syslog_message)


def tls_context(ca: str) -> ssl.SSLContext:
    """Verify the collector against ``ca`` (the system store when empty) and its name;
    TLS 1.2 at least (RFC 5425, BCP 195)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class SyslogSender:
    """One connection to a collector; every failure is an ``OSError`` for the caller.

    Not thread-safe, except ``abort``, which another thread calls to end a blocked send.
    """

    def __init__(self, destination: Destination) -> None:
        self.destination = destination
        self._sock: socket.socket | None = None

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def connect(self) -> None:
        self.close()
        raw = socket.create_connection(
            (self.destination.host, self.destination.port), timeout=CONNECT_TIMEOUT
        )
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock = raw
            if self.destination.scheme is Scheme.TLS:
                context = tls_context(self.destination.ca)
                sock = context.wrap_socket(raw, server_hostname=self.destination.host)
            sock.settimeout(SEND_TIMEOUT)
        except BaseException:
            raw.close()
            raise
        self._sock = sock

    def send(self, data: bytes) -> None:
        if self._sock is None:
            raise ConnectionError("not connected to the audit repository")
        self._sock.sendall(data)

    def check_open(self) -> None:
        """``ConnectionError`` when the collector has closed the connection (collectors
        close idle ones) or reset it: reconnect before sending."""
        if self._peer_closed(0.0):
            raise ConnectionError("the audit repository closed the connection")

    def confirm(self, wait: float) -> None:
        """After a send: ``ConnectionError`` when the collector cannot have read it all.

        A TCP that is closed with received data unread answers with a reset (RFC 1122
        4.2.2.13), as it does to data arriving after its close; a plain close (FIN) with no
        reset after it means the collector read everything first. ``wait`` is how long
        such a reset has to arrive: a network round trip is well within it.
        """
        if not self._peer_closed(wait):
            return
        sock = self._sock
        if sock is not None:
            poller = select.poll()
            poller.register(sock, select.POLLERR | select.POLLHUP)
            reset = poller.poll(wait * 1000) or sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if reset:
                raise ConnectionResetError("the audit repository reset the connection")
        self.close()  # it read the batch, then closed: reconnect for the next one

    def _peer_closed(self, wait: float) -> bool:
        """Whether the collector closed its side; ``OSError`` if it reset the connection.

        A collector never writes to a syslog sender, so a readable socket means its close
        (or TLS records such as session tickets, which ``recv`` absorbs).
        """
        sock = self._sock
        if sock is None:
            raise ConnectionError("not connected to the audit repository")
        poller = select.poll()  # not select.select: a busy server's descriptors pass 1024
        poller.register(sock, select.POLLIN)
        readable = bool(poller.poll(wait * 1000))
        tls_pending = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
        if not readable and not tls_pending:
            return False
        sock.setblocking(False)
        try:
            data = sock.recv(4096)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False
        finally:
            sock.settimeout(SEND_TIMEOUT)
        return not data

    def abort(self) -> None:
        """Wake a send blocked in another thread; that thread then sees an ``OSError``."""
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed by the peer
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
