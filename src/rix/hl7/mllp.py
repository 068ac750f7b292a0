"""The MLLP listener (HL7 v2 minimal lower layer protocol): one message, one ACK.

Frames are ``0x0B message 0x1C 0x0D`` (``rix.workflow.mllp_client``, which frames the
ORU^R01 rix sends too). Each message is handled before its ACK is sent:
AA once its effect is committed, AE when rix could not apply it now (send it again), AR
when it never will be (malformed, unsupported, unknown patient or trust), with the
reason in MSA-3. A broken frame closes the connection; the listener carries on.
"""

from __future__ import annotations

import socket
import socketserver
import threading

import structlog

from rix.archive import Archive
from rix.errors import AccessDenied, Conflict, NotFound, RixError
from rix.hl7 import adt, messages, orders, patients
from rix.hl7.messages import ErrorCode, Header, Rejected
from rix.workflow.mllp_client import END, START, frame

log = structlog.get_logger(__name__)

MAX_MESSAGE = 1 << 20  # ADT and orders are small; anything larger is not HL7 we handle
HANDLERS = {**adt.HANDLERS, **patients.HANDLERS, **orders.HANDLERS}


def handle(archive: Archive, text: str, source: str) -> str:
    """One message in, its ACK out."""
    head: Header | None = None
    try:
        message = messages.parse(text)
        head = messages.header(message)
        handler = HANDLERS.get((head.message_type, head.trigger))
        if handler is None:
            raise Rejected(
                f"rix does not process {head.message_type}^{head.trigger}",
                ErrorCode.UNSUPPORTED_MESSAGE_TYPE,
            )
        note = handler(archive, message, head, source)
    except (Rejected, NotFound, Conflict, AccessDenied) as exc:
        # the message's changes run in one transaction: a refusal leaves nothing behind
        log.info("hl7 message rejected", reason=_reason(exc))
        return messages.ack(head, "AR", _reason(exc), _code(exc))
    except Exception as exc:  # the database or the job table is away: the sender retries
        log.warning("hl7 message not applied", error=type(exc).__name__)
        return messages.ack(head, "AE", f"not applied, send again: {type(exc).__name__}")
    return messages.ack(head, "AA", note)


def _reason(exc: Exception) -> str:
    return exc.reason if isinstance(exc, RixError) else str(exc)


def _code(exc: Exception) -> ErrorCode:
    if isinstance(exc, Rejected):
        return exc.code
    if isinstance(exc, NotFound):
        return ErrorCode.UNKNOWN_KEY
    return ErrorCode.INTERNAL_ERROR


class _Connection(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.server.archive.settings.dicom_timeout * 10)
        source = str(self.client_address[0])
        buffer = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while END in buffer:
                received, buffer = buffer.split(END, 1)
                start = received.find(START)
                if start < 0:
                    return  # not MLLP: nothing sensible to answer
                text = received[start + 1 :].decode("utf-8", "replace")
                reply = handle(self.server.archive, text, source)
                sock.sendall(frame(reply))
            if len(buffer) > MAX_MESSAGE:
                sock.sendall(frame(messages.ack(None, "AR", "message too large")))
                return


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        settings = archive.settings
        super().__init__((settings.dicom_host, settings.hl7_port), _Connection)


class Listener:
    def __init__(self, archive: Archive) -> None:
        self.server = _Server(archive)
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="rix-mllp", daemon=True
        )

    def shutdown(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start(archive: Archive) -> Listener:
    listener = Listener(archive)
    listener._thread.start()
    log.info("hl7 mllp listening", port=listener.port)
    return listener
