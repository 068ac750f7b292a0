"""A DICOMweb peer seen from outside: multipart bodies (RFC 2387), Part 10 bytes, raw
requests, and the server process's memory.

Written without rix's own code, so a bug in rix's multipart reader or file meta writer
cannot hide itself in the tests.
"""

from __future__ import annotations

import io
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx
from pydicom.dataset import Dataset

BOUNDARY = "rix-test-3f9a0c1e"
DICOM_PARTS = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'


@dataclass(frozen=True, slots=True, kw_only=True)
class Part:
    headers: dict[str, str]  # names in lower case
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def part10(ds: Dataset) -> bytes:
    """``ds`` as a Part 10 file (preamble, DICM, file meta, dataset)."""
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def after_file_meta(data: bytes) -> bytes:
    """The dataset bytes of a Part 10 file, found through its File Meta group length."""
    assert data[128:132] == b"DICM", "not a Part 10 file"
    tag, vr = struct.unpack_from("<L2s", data, 132)
    assert (tag, vr) == (0x00000002, b"UL"), "file meta starts without its group length"
    (length,) = struct.unpack_from("<L", data, 140)
    return data[144 + length :]


def multipart(parts: Iterable[tuple[dict[str, str], bytes]], boundary: str = BOUNDARY) -> bytes:
    out = io.BytesIO()
    for headers, body in parts:
        out.write(f"--{boundary}\r\n".encode())
        for name, value in headers.items():
            out.write(f"{name}: {value}\r\n".encode())
        out.write(b"\r\n" + body + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue()


def dicom_parts(files: Iterable[bytes]) -> bytes:
    return multipart(({"Content-Type": "application/dicom"}, f) for f in files)


def boundary_of(content_type: str) -> str:
    for piece in content_type.split(";")[1:]:
        key, _, value = piece.partition("=")
        if key.strip().lower() == "boundary":
            return value.strip().strip('"')
    raise AssertionError(f"no boundary in {content_type!r}")


def parse_multipart(content_type: str, body: bytes) -> list[Part]:
    """The parts of a multipart/related body, strictly: every delimiter where RFC 2046 puts it."""
    assert content_type.lower().startswith("multipart/related"), content_type
    mark = b"--" + boundary_of(content_type).encode()
    assert body.startswith(mark + b"\r\n"), "the body does not open with its boundary"
    closing = body.rfind(b"\r\n" + mark + b"--")
    assert closing >= 0, "the body has no close delimiter"
    parts = []
    for chunk in body[len(mark) + 2 : closing].split(b"\r\n" + mark + b"\r\n"):
        head, sep, content = chunk.partition(b"\r\n\r\n")
        assert sep, "a part without the blank line after its headers"
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        parts.append(Part(headers=headers, body=content))
    return parts


def stow(http: httpx.Client, files: Iterable[bytes], study: str | None = None) -> httpx.Response:
    """POST ``files`` as one STOW-RS request."""
    path = "/studies" if study is None else f"/studies/{study}"
    return http.post(
        path,
        content=dicom_parts(files),
        headers={"Content-Type": DICOM_PARTS, "Accept": "application/dicom+json"},
    )


def sequence(answer: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    """Items of a sequence of a STOW-RS answer, [] when absent."""
    items: list[dict[str, Any]] = answer.get(tag, {}).get("Value", [])
    return items


FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_SEQUENCE = "00081199"
FAILURE_REASON = "00081197"
WARNING_REASON = "00081196"
ERROR_COMMENT = "00000902"
SOP_INSTANCE_UID = "00081155"


def first_value(item: dict[str, Any], tag: str) -> Any:
    values = item.get(tag, {}).get("Value", [None])
    return values[0]


def raw_request(port: int, head: bytes, timeout: float = 10.0) -> bytes:
    """Send ``head`` (request line and headers) on a socket of its own and return what
    the server answers before it closes or goes quiet: for requests no HTTP client sends."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head)
        received = b""
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            received += chunk
            if _complete(received):
                break
    return received


def _complete(response: bytes) -> bool:
    head, sep, body = response.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            return len(body) >= int(value)
    return False


def status_line(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of a process from /proc (Linux), in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM so it measures from now (proc(5) clear_refs "5"); False if refused."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True
