"""An HL7 v2 sender over MLLP (HL7 v2.5 Appendix C: ``0x0B message 0x1C 0x0D``), written
without rix's code, and the ADT messages a patient administration system sends."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

START, END = b"\x0b", b"\x1c\x0d"
WHEN = "20261127120000"


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack:
    """MSA-1, MSA-2 and MSA-3 of an acknowledgement."""

    code: str  # AA accepted, AE error (send again), AR rejected
    control_id: str
    text: str


@contextmanager
def connection(port: int, source: str = "127.0.0.1") -> Iterator[socket.socket]:
    """A connection to rix's listener on loopback, from ``source`` (any 127.x address)."""
    with socket.create_connection(("127.0.0.1", port), 30, (source, 0)) as sock:
        yield sock


def exchange(sock: socket.socket, message: bytes | str) -> Ack:
    """Send one framed message; read its acknowledgement."""
    body = message.encode() if isinstance(message, str) else message
    sock.sendall(START + body + END)
    reply = b""
    while END not in reply:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed before an ACK; got {reply!r}"
        reply += chunk
    frame = reply.split(END, 1)[0]
    assert frame.startswith(START), reply
    segments = frame[1:].decode().split("\r")
    [msa] = [s.split("|") for s in segments if s.startswith("MSA|")]
    msa += [""] * (4 - len(msa))
    return Ack(code=msa[1], control_id=msa[2], text=msa[3])


def adt(
    trigger: str,
    control_id: str,
    *,
    facility: str = "HIS",
    new_location: str = "",
    prior_location: str = "",
    patient: str | None = "",
) -> str:
    """ADT^``trigger``: MSH-4 ``facility``, PV1-3.4 ``new_location``, PV1-6.4
    ``prior_location`` and PID-3 ``patient`` (no PID segment when None)."""
    segments = [
        f"MSH|^~\\&|PAS|{facility}|RIX|RIX|{WHEN}||ADT^{trigger}^ADT_A02|{control_id}|P|2.5",
        f"EVN|{trigger}|{WHEN}",
    ]
    if patient is not None:
        segments.append(f"PID|1||{patient}||Moving^Test||19700101|F")
    segments.append(f"PV1|1|I|WARD^^^{new_location}|||BAY^^^{prior_location}")
    return "\r".join(segments) + "\r"


def by_nhs_number(number: str) -> str:
    """PID-3 with an NHS number: assigning authority NHS, identifier type NH."""
    return f"{number}^^^NHS^NH"


def by_hospital_number(patient_id: str, issuer: str) -> str:
    """PID-3 with a hospital number: its assigning authority, identifier type MR."""
    return f"{patient_id}^^^{issuer}^MR"
