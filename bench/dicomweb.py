"""The timed DICOMweb requests (PS3.18), made the same way against either server.

One ``requests.Session`` per server: a persistent HTTP/1.1 connection, as a viewer keeps
one. Bodies are read raw with ``read1`` (whatever the socket has, up to 1 MiB) and never
decoded while timing, so a figure is the server's time to produce and send its bytes, and
the first read marks the first body byte. httpx's reader topped out at ~300 MB/s on
loopback where both servers send ~1 GB/s to urllib3, so the client would have been the
figure. Query values go into the URL as a browser's ``encodeURIComponent`` leaves them
(``*`` literal): Orthanc 1.10 does not decode ``%2A`` and matches it literally.
"""

from __future__ import annotations

import gzip
import json
import secrets
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests
from pydicom import dcmread

BROWSER_ENCODINGS = "gzip, deflate, br, zstd"  # what Chromium and Firefox send
DICOM_JSON = "application/dicom+json"
ALL_DICOM = 'multipart/related; type="application/dicom"; transfer-syntax=*'
AS_STORED_DICOM = 'multipart/related; type="application/dicom"'
ALL_FRAMES = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
AS_STORED_FRAMES = 'multipart/related; type="application/octet-stream"'
READ = 1 << 20
TIMEOUT = 300.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """A server's DICOMweb root and the one connection every request to it goes over."""

    root: str
    http: requests.Session


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """One GET: seconds to the last byte and to the first body byte, and what came.

    ``size`` counts body bytes as sent, ``decoded_size`` once the Content-Encoding is
    undone (after timing); ``parts`` counts the parts of a multipart body; ``body`` is
    kept, decoded, for errors, compressed answers and untimed checks.
    """

    status: int
    seconds: float
    first_byte: float
    size: int
    decoded_size: int
    encoding: str
    parts: int = 0
    body: bytes = b""

    @property
    def ok(self) -> bool:
        return self.status == 200

    def problem(self) -> str:
        text = self.body[:300].decode("utf-8", errors="replace").replace("\n", " ")
        return f"HTTP {self.status}: {text}"


@contextmanager
def connect(root: str, auth: Mapping[str, str] | None = None) -> Iterator[Endpoint]:
    http = requests.Session()
    http.headers.update({"Accept-Encoding": BROWSER_ENCODINGS, "User-Agent": "rix-bench"})
    http.headers.update(auth or {})
    try:
        yield Endpoint(root=root, http=http)
    finally:
        http.close()


def url(endpoint: Endpoint, path: str, params: Mapping[str, str] | None = None) -> str:
    query = f"?{urlencode(params, safe='*,')}" if params else ""
    return f"{endpoint.root}{path}{query}"


def get(
    endpoint: Endpoint,
    path: str,
    accept: str,
    params: Mapping[str, str] | None = None,
    encoding: str | None = None,
    keep: bool = False,
) -> Reply:
    """One timed GET, read to its last byte; multipart parts counted on the way (or,
    for a compressed body, in it once decoded after the clock stopped)."""
    headers = {"Accept": accept}
    if encoding is not None:
        headers["Accept-Encoding"] = encoding
    start = time.perf_counter()
    with endpoint.http.get(
        url(endpoint, path, params), headers=headers, stream=True, timeout=TIMEOUT
    ) as response:
        sent_encoding = response.headers.get("Content-Encoding", "identity").lower()
        plain = sent_encoding == "identity"
        keep = keep or not plain or response.status_code != 200
        counter = _PartCounter(response.headers.get("Content-Type", ""))
        kept: list[bytes] = []
        size, first = 0, 0.0
        while chunk := response.raw.read1(READ, decode_content=False):
            if not size:
                first = time.perf_counter() - start
            size += len(chunk)
            if plain:
                counter.feed(chunk)
            if keep:
                kept.append(chunk)
        seconds = time.perf_counter() - start
    body = _decoded(b"".join(kept), sent_encoding)
    if not plain:
        counter.feed(body)
    return Reply(
        status=response.status_code,
        seconds=seconds,
        first_byte=first,
        size=size,
        decoded_size=len(body) if keep else size,
        encoding=sent_encoding,
        parts=counter.parts,
        body=body,
    )


def _decoded(body: bytes, encoding: str) -> bytes:
    """Undo gzip or deflate (zlib-wrapped or raw, RFC 9110 8.4.1); anything else as is."""
    with suppress(OSError, EOFError, zlib.error):
        if encoding in ("gzip", "x-gzip"):
            return gzip.decompress(body)
        if encoding == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)
    return body


class _PartCounter:
    """Counts ``--boundary`` delimiters across chunk edges; the closing one is not a part."""

    def __init__(self, content_type: str) -> None:
        mark = boundary_of(content_type)
        self.delimiter = b"--" + mark.encode() if mark else b""
        self.seen = 0
        self.tail = b""

    def feed(self, chunk: bytes) -> None:
        if not self.delimiter:
            return
        window = self.tail + chunk
        self.seen += window.count(self.delimiter)
        self.tail = window[-(len(self.delimiter) - 1) :]

    @property
    def parts(self) -> int:
        return max(self.seen - 1, 0)


def boundary_of(content_type: str) -> str:
    for piece in content_type.split(";")[1:]:
        key, _, value = piece.partition("=")
        if key.strip().lower() == "boundary":
            return value.strip().strip('"')
    return ""


class RequestFailed(Exception):
    """An untimed request was not answered with 200 (or 204); the message says how."""


def count(endpoint: Endpoint, path: str, params: Mapping[str, str]) -> int:
    """Untimed: the number of objects in a QIDO-RS or metadata answer (gzip undone)."""
    response = endpoint.http.get(
        url(endpoint, path, params), headers={"Accept": DICOM_JSON}, timeout=TIMEOUT
    )
    if response.status_code == 204:  # PS3.18 10.6.3.2 allows "no content" for no match
        return 0
    if response.status_code != 200:
        raise RequestFailed(f"HTTP {response.status_code}: {response.text[:300]}")
    answer: Any = response.json()
    if not isinstance(answer, list):
        raise RequestFailed(f"the answer is not a JSON array: {response.text[:200]}")
    return len(answer)


# --- STOW-RS -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Upload:
    """One STOW-RS request body, built before timing starts."""

    body: bytes
    content_type: str
    instances: int


def uploads(files: Sequence[Path], per_request: int) -> list[Upload]:
    out = []
    for start in range(0, len(files), per_request):
        share = files[start : start + per_request]
        mark = "bench-" + secrets.token_hex(12)
        pieces = []
        for path in share:
            pieces += [f"--{mark}\r\nContent-Type: application/dicom\r\n\r\n".encode()]
            pieces += [path.read_bytes(), b"\r\n"]
        pieces.append(f"--{mark}--\r\n".encode())
        content_type = f'multipart/related; type="application/dicom"; boundary={mark}'
        out.append(Upload(body=b"".join(pieces), content_type=content_type, instances=len(share)))
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class StowAnswer:
    seconds: float
    problems: tuple[str, ...] = ()


def stow(endpoint: Endpoint, batch: Sequence[Upload]) -> StowAnswer:
    """POST every upload in turn to ``/studies``; timed from the first to the last answer.

    A request counts as failed unless it is 200 with every instance in the Referenced
    SOP Sequence and none in the Failed SOP Sequence (PS3.18 10.5.3).
    """
    problems: list[str] = []
    start = time.perf_counter()
    for number, upload in enumerate(batch, 1):
        response = endpoint.http.post(
            url(endpoint, "/studies"),
            data=upload.body,
            headers={"Content-Type": upload.content_type, "Accept": DICOM_JSON},
            timeout=TIMEOUT,
        )
        problem = _stow_problem(response, upload.instances)
        if problem:
            problems.append(f"request {number}: {problem}")
    return StowAnswer(seconds=time.perf_counter() - start, problems=tuple(problems))


def _stow_problem(response: requests.Response, expected: int) -> str:
    text = response.text
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {text[:300]}"
    try:
        answer = json.loads(text)
    except ValueError:
        return f"answer is not JSON: {text[:200]}"
    stored = len(answer.get("00081199", {}).get("Value", []))
    failed = len(answer.get("00081198", {}).get("Value", []))
    if stored != expected or failed:
        return f"{stored} of {expected} referenced, {failed} failed: {text[:300]}"
    return ""


# --- the CT's UIDs -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Series:
    study_uid: str
    series_uid: str
    sop_uids: tuple[str, ...]  # in slice order

    @property
    def path(self) -> str:
        return f"/studies/{self.study_uid}/series/{self.series_uid}"

    def frame_path(self, sop_uid: str, frame: int = 1) -> str:
        return f"{self.path}/instances/{sop_uid}/frames/{frame}"

    @classmethod
    def from_files(cls, files: Sequence[Path]) -> Series:
        headers = [dcmread(path, stop_before_pixels=True) for path in files]
        return cls(
            study_uid=str(headers[0].StudyInstanceUID),
            series_uid=str(headers[0].SeriesInstanceUID),
            sop_uids=tuple(str(h.SOPInstanceUID) for h in headers),
        )
