"""MLLP (HL7 v2.5 Appendix C, the minimal lower layer protocol): the frame, and the client
that sends one message and reads its acknowledgement.

A frame is ``0x0B message 0x1C 0x0D``. The bytes are declared here, below both ends that
use them: the ORU^R01 sender (``rix.workflow.oru`` through ``rix.workflow.report_delivery``)
and the listener (``rix.hl7.mllp``), so the two can never frame differently.

The client reads only what decides a delivery, MSA-1 and MSA-3 of the ACK; anything else
(no connection, no answer, not HL7, AE or AR) is ``Undelivered`` and the job retries.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import hl7

START, END = b"\x0b", b"\x1c\x0d"
MAX_ACK = 1 << 16
ACCEPTED = ("AA", "CA")  # application accept; commit accept in enhanced mode


class Undelivered(RuntimeError):
    """The destination did not accept the message (no connection, no answer, AE or AR):
    the job is retried."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack:
    code: str  # MSA-1: AA, AE, AR (or CA, CE, CR in enhanced mode)
    text: str  # MSA-3


def frame(text: str) -> bytes:
    """One message as it goes on the wire."""
    return START + text.encode("utf-8") + END


def _msa(message: hl7.Message, field: int) -> str:
    try:
        return str(message.extract_field("MSA", 1, field, 1, 1)).strip()
    except (IndexError, KeyError):
        return ""


def _ack(text: str) -> Ack:
    try:
        message = hl7.parse(text.replace("\n", "\r"))
        message.segment("MSH")
    except Exception as exc:  # python-hl7 raises several types for malformed text
        raise Undelivered(f"the acknowledgement is not HL7: {type(exc).__name__}") from exc
    return Ack(code=_msa(message, 1).upper(), text=_msa(message, 3))


def send(host: str, port: int, text: str, *, timeout: float) -> Ack:
    """Send one framed message and read its ACK."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(frame(text))
            reply = b""
            while END not in reply:
                chunk = sock.recv(65536)
                if not chunk or len(reply) > MAX_ACK:
                    raise Undelivered("the connection closed without an acknowledgement")
                reply += chunk
    except OSError as exc:
        raise Undelivered(f"no acknowledgement from {host}:{port}: {type(exc).__name__}") from exc
    received = reply.split(END, 1)[0]
    start = received.find(START)
    return _ack(received[start + 1 :].decode("utf-8", "replace"))


def deliver(host: str, port: int, text: str, *, timeout: float) -> None:
    """``send``, and ``Undelivered`` unless the answer is AA (CA in enhanced mode)."""
    ack = send(host, port, text, timeout=timeout)
    if ack.code not in ACCEPTED:
        raise Undelivered(f"the receiver answered {ack.code or 'no MSA'}: {ack.text[:200]}")
