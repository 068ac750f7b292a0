"""A streaming multipart/related reader (RFC 2046 5.1, RFC 2387) with bounded memory.

Parts are spooled to a temporary file past ``SPOOL`` bytes, so a STOW-RS upload of many
large instances holds at most one chunk plus one part's spool in memory. A body that
breaks the grammar (no opening delimiter, no closing one, a part without headers)
raises ``MalformedMultipart`` with the reason; what was already complete is kept.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import IO

from rix.web.dicomweb.errors import BadRequest

SPOOL = 16 << 20
MAX_HEADER = 16 << 10


class MalformedMultipart(BadRequest):
    """The body is not valid multipart/related."""


@dataclass
class Part:
    headers: dict[str, str]
    body: IO[bytes]

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def read(self) -> bytes:
        self.body.seek(0)
        return self.body.read()


def boundary_of(content_type: str) -> str:
    """The boundary parameter of a multipart Content-Type; 400 when absent."""
    for piece in content_type.split(";")[1:]:
        key, _, value = piece.partition("=")
        if key.strip().lower() == "boundary":
            value = value.strip().strip('"')
            if 0 < len(value) <= 70:  # RFC 2046 5.1.1
                return value
    raise MalformedMultipart("multipart/related needs a boundary parameter of 1 to 70 characters")


def _headers(block: bytes) -> dict[str, str]:
    headers = {}
    for line in block.decode("latin-1").split("\r\n"):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise MalformedMultipart(f"part header line without a colon: {line[:60]!r}")
        headers[name.strip().lower()] = value.strip()
    return headers


async def parts(stream: AsyncIterator[bytes], boundary: str) -> AsyncIterator[Part]:
    """Yield each part as soon as its closing delimiter has arrived."""
    opening = b"--" + boundary.encode()
    delimiter = b"\r\n" + opening
    buffer = b""
    async for chunk in stream:
        buffer += chunk
        start = buffer.find(opening)
        if start >= 0:
            buffer = buffer[start + len(opening) :]
            break
        if len(buffer) > MAX_HEADER:
            raise MalformedMultipart("the body does not start with the boundary delimiter")
    else:
        raise MalformedMultipart("the body has no boundary delimiter")
    reader = _PartReader(delimiter)
    async for part in reader.feed_all(buffer, stream):
        yield part


class _PartReader:
    def __init__(self, delimiter: bytes) -> None:
        self.delimiter = delimiter
        self.tail = len(delimiter) + 4

    async def feed_all(self, buffer: bytes, stream: AsyncIterator[bytes]) -> AsyncIterator[Part]:
        """``buffer`` starts just after a delimiter: ``--`` ends the body, CRLF opens a part."""
        pending = buffer
        chunks = aiter(stream)
        while True:
            while len(pending) < 2:
                pending += await self._next(chunks, "the body ends inside a delimiter")
            if pending.startswith(b"--"):
                return  # close-delimiter; the epilogue is ignored
            while b"\r\n\r\n" not in pending:
                if len(pending) > MAX_HEADER:
                    raise MalformedMultipart("part headers are too long or never end")
                pending += await self._next(chunks, "the body ends inside part headers")
            head, _, pending = pending.partition(b"\r\n\r\n")
            headers = _headers(head)
            body: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL)  # noqa: SIM115 - lives with the Part
            while True:
                found = pending.find(self.delimiter)
                if found >= 0:
                    body.write(pending[:found])
                    pending = pending[found + len(self.delimiter) :]
                    break
                keep = max(len(pending) - self.tail, 0)
                body.write(pending[:keep])
                pending = pending[keep:] + await self._next(
                    chunks, "the body ends inside a part (no closing delimiter)"
                )
            yield Part(headers=headers, body=body)

    @staticmethod
    async def _next(chunks: AsyncIterator[bytes], reason: str) -> bytes:
        try:
            while True:
                chunk = await anext(chunks)
                if chunk:
                    return chunk
        except StopAsyncIteration:
            raise MalformedMultipart(reason) from None
