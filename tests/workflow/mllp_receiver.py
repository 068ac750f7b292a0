"""An HL7 v2 receiver over MLLP (a RIS or EPR taking reports), written without rix's code:
it keeps every message it is sent and answers each with the next of ``answers`` (AA once
they run out), an ACK naming the message's control ID."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

START, END = b"\x0b", b"\x1c\x0d"


@dataclass
class Receiver:
    port: int
    answers: Sequence[str] = ()
    received: list[str] = field(default_factory=list)
    _server: socketserver.ThreadingTCPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Receiver:
        receiver = self

        class Connection(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                buffer = b""
                while chunk := self.request.recv(65536):
                    buffer += chunk
                    while END in buffer:
                        frame, buffer = buffer.split(END, 1)
                        text = frame[frame.index(START) + 1 :].decode()
                        self.request.sendall(START + receiver.answer(text).encode() + END)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Connection)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def answer(self, text: str) -> str:
        with self._lock:
            self.received.append(text)
            n = len(self.received)
        code = self.answers[n - 1] if n <= len(self.answers) else "AA"
        control = segment(text, "MSH")[9]
        msh = f"MSH|^~\\&|RIS|X|RIX|RIX|20260101000000||ACK^R01^ACK|A{n}|P|2.5"
        return f"{msh}\rMSA|{code}|{control}|{'ok' if code == 'AA' else 'try later'}\r"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def segment(text: str, name: str, n: int = 0) -> list[str]:
    """The ``n``th segment called ``name``, split into fields; for MSH, index i is MSH-i
    (as HL7 counts, MSH-1 being the separator)."""
    found = [s for s in text.split("\r") if s.startswith(name + "|")]
    fields = found[n].split("|")
    return [fields[0], "|", *fields[1:]] if name == "MSH" else fields
