"""A minimal blocking DIMSE SCU (C-FIND, C-MOVE): the instrument for query latency.

Why not pynetdicom as the client: its reactor threads poll with sleeps and it decodes
(and, by default, pretty-prints for the log) every identifier, so an all-studies C-FIND
that DCMTK's findscu finishes in ~0.2 s against Orthanc takes ~0.6-0.8 s through it, and
the ratio between two servers is squeezed towards 1. This client reads PDUs with plain
blocking socket calls, one thread, and only counts responses (identifiers are decoded
only when asked), so nearly all of a measured latency is the server's.

Implements just what the measurements need of PS3.8 (A-ASSOCIATE, P-DATA, A-RELEASE)
and PS3.7 (C-FIND-RQ/RSP and C-MOVE-RQ/RSP command sets, Implicit VR Little Endian).
"""

from __future__ import annotations

import io
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pynetdicom.dsutils import decode, encode

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
IMPLICIT_VR_LE = "1.2.840.10008.1.2"
IMPLEMENTATION_CLASS_UID = "1.2.826.0.1.3680043.8.498.1.1"  # pydicom's root, bench suffix
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
C_FIND_RQ, C_MOVE_RQ = 0x0020, 0x0021
NO_DATASET = 0x0101
PENDING = (0xFF00, 0xFF01)
MAX_PDU = 131072
# PS3.7 E.1 tags of the response command set this client reads
STATUS, DATASET_TYPE = 0x00000900, 0x00000800
REMAINING, COMPLETED, FAILED, WARNING = 0x00001020, 0x00001021, 0x00001022, 0x00001023


class AssociationError(RuntimeError):
    """The peer rejected, aborted or broke the association."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    """One DIMSE response: its command elements (US values only) and its raw identifier."""

    command: dict[int, int]
    identifier: bytes | None

    @property
    def status(self) -> int:
        return self.command.get(STATUS, -1)

    @property
    def is_pending(self) -> bool:
        return self.status in PENDING

    def dataset(self) -> Dataset:
        assert self.identifier is not None
        return decode(io.BytesIO(self.identifier), True, True)


def _item(kind: int, body: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(body)) + body


def _pdu(kind: int, body: bytes) -> bytes:
    return struct.pack(">BBI", kind, 0, len(body)) + body


def associate_rq(calling: str, called: str, abstract_syntax: str) -> bytes:
    """A-ASSOCIATE-RQ with one presentation context (PS3.8 9.3.2)."""
    context = struct.pack(">BBBB", 1, 0, 0, 0)
    context += _item(0x30, abstract_syntax.encode()) + _item(0x40, IMPLICIT_VR_LE.encode())
    user = _item(0x51, struct.pack(">I", MAX_PDU)) + _item(0x52, IMPLEMENTATION_CLASS_UID.encode())
    body = struct.pack(">HH", 1, 0)
    body += called.ljust(16).encode()[:16] + calling.ljust(16).encode()[:16] + bytes(32)
    body += _item(0x10, APPLICATION_CONTEXT.encode()) + _item(0x20, context) + _item(0x50, user)
    return _pdu(0x01, body)


class Association:
    """One open association with a single accepted presentation context (ID 1)."""

    def __init__(self, host: str, port: int, calling: str, called: str, abstract: str) -> None:
        self.sock = socket.create_connection((host, port), timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.message_id = 0
        self.peer_max_pdu = 0
        self.sock.sendall(associate_rq(calling, called, abstract))
        kind, body = self._read_pdu()
        if kind != 0x02:
            self.sock.close()
            raise AssociationError(f"association refused by {called} (PDU type {kind:#04x})")
        self._check_accepted(body)

    def _check_accepted(self, body: bytes) -> None:
        """Walk the A-ASSOCIATE-AC items: context 1 accepted, note the peer's max PDU."""
        offset, accepted = 68, False
        while offset + 4 <= len(body):
            kind, length = body[offset], struct.unpack_from(">H", body, offset + 2)[0]
            value = body[offset + 4 : offset + 4 + length]
            if kind == 0x21:
                accepted = value[0] == 1 and value[2] == 0
            elif kind == 0x50:
                sub = 0
                while sub + 4 <= len(value):
                    sub_kind, sub_len = value[sub], struct.unpack_from(">H", value, sub + 2)[0]
                    if sub_kind == 0x51:
                        self.peer_max_pdu = struct.unpack_from(">I", value, sub + 4)[0]
                    sub += 4 + sub_len
            offset += 4 + length
        if not accepted:
            self.close()
            raise AssociationError("presentation context not accepted")

    def _recv_exactly(self, size: int) -> bytes:
        chunks, left = [], size
        while left:
            chunk = self.sock.recv(min(left, 1 << 20))
            if not chunk:
                raise AssociationError("connection closed by the peer")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _read_pdu(self) -> tuple[int, bytes]:
        kind, _reserved, length = struct.unpack(">BBI", self._recv_exactly(6))
        return kind, self._recv_exactly(length)

    def _send_pdv(self, data: bytes, command: bool) -> None:
        """P-DATA-TF PDUs, fragments sized for the peer's maximum PDU (0: unlimited)."""
        limit = (self.peer_max_pdu or (1 << 24)) - 6 - 6
        for start in range(0, max(len(data), 1), limit):
            fragment = data[start : start + limit]
            last = start + limit >= len(data)
            header = (1 if command else 0) | (2 if last else 0)
            item = struct.pack(">IBB", len(fragment) + 2, 1, header) + fragment
            self.sock.sendall(_pdu(0x04, item))

    def _messages(self) -> Iterator[tuple[bytes, bytes | None]]:
        """Reassemble PDVs into (command set, dataset or None) messages."""
        command, data = bytearray(), bytearray()
        pending_command: bytes | None = None
        while True:
            kind, body = self._read_pdu()
            if kind != 0x04:
                raise AssociationError(f"unexpected PDU type {kind:#04x} during a request")
            offset = 0
            while offset < len(body):
                length = struct.unpack_from(">I", body, offset)[0]
                header = body[offset + 5]
                fragment = body[offset + 6 : offset + 4 + length]
                offset += 4 + length
                if header & 1:
                    command += fragment
                    if header & 2:
                        parsed = bytes(command)
                        command.clear()
                        if _us_elements(parsed).get(DATASET_TYPE) == NO_DATASET:
                            yield parsed, None
                        else:
                            pending_command = parsed
                else:
                    data += fragment
                    if header & 2 and pending_command is not None:
                        yield pending_command, bytes(data)
                        pending_command = None
                        data.clear()

    def request(
        self, field: int, sop_class: str, identifier: Dataset, move_destination: str = ""
    ) -> Iterator[Response]:
        """Send one C-FIND/C-MOVE request; yield responses up to and including the final."""
        self.message_id += 1
        cmd = Dataset()
        cmd.AffectedSOPClassUID = sop_class
        cmd.CommandField = field
        cmd.MessageID = self.message_id
        if move_destination:
            cmd.MoveDestination = move_destination
        cmd.Priority = 0
        cmd.CommandDataSetType = 0x0001  # any value but 0x0101: an identifier follows
        encoded = encode(cmd, True, True)
        assert encoded is not None
        group_length = struct.pack("<HHII", 0, 0, 4, len(encoded))
        self._send_pdv(group_length + encoded, command=True)
        data = encode(identifier, True, True)
        assert data is not None
        self._send_pdv(data, command=False)
        for command, dataset in self._messages():
            response = Response(command=_us_elements(command), identifier=dataset)
            yield response
            if not response.is_pending:
                return

    def close(self) -> None:
        """A-RELEASE (PS3.8 7.2); the socket is closed whatever the peer answers."""
        try:
            self.sock.sendall(_pdu(0x05, bytes(4)))
            self._read_pdu()
        except (OSError, AssociationError):
            pass
        finally:
            self.sock.close()


def _us_elements(command: bytes) -> dict[int, int]:
    """The 2-byte (US) elements of an Implicit VR LE command set, by tag."""
    out, offset = {}, 0
    while offset + 8 <= len(command):
        group, element, length = struct.unpack_from("<HHI", command, offset)
        if length == 2:
            out[(group << 16) | element] = struct.unpack_from("<H", command, offset + 8)[0]
        offset += 8 + length
    return out
