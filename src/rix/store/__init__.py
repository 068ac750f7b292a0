"""Where bytes live: one small protocol, with two implementations.

``files.FileStore`` keeps objects as files under the data folder; it is the store
``rix serve`` and the command line use. ``memory.MemoryStore`` is its in-memory twin for
unit tests. No object-storage (S3) implementation exists: one would implement the same
protocol. Callers reach bytes only through it, never by asking which store they hold.

The object store is the truth and the index is derived (DESIGN.md); every object is a
complete DICOM file, so ``rix reindex`` can rebuild the index from the store alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from rix.errors import RixError

_KEY = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")


class ObjectExists(RixError):
    """``put`` never overwrites: a key is written once, so stored bytes never change."""


class ObjectMissing(RixError):
    http_status = 404


def check_key(key: str) -> str:
    """Refuse keys that could leave the store's root (``..``, absolute, odd characters)."""
    if not _KEY.fullmatch(key) or any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"unsafe object key {key!r}")
    return key


class ObjectStore(Protocol):
    def put(self, key: str, data: bytes) -> None:
        """Store durably and exclusively; raise ObjectExists if the key is taken."""

    def open(self, key: str) -> BinaryIO:
        """A readable stream of the object; the caller closes it."""

    def get_range(self, key: str, start: int, length: int) -> bytes: ...

    def delete(self, key: str) -> None: ...

    def all_keys(self, prefix: str = "") -> Iterator[str]:
        """Every key under ``prefix``; used by reindex and verify, never by a request."""

    def local_path(self, key: str) -> Path | None:
        """The object as a file on this machine, for senders that hand a path to the
        network and so send the bytes as stored without reading them first (C-MOVE,
        C-GET, C-STORE); None where objects are not local files."""

    def free_bytes(self) -> int | None:
        """Room left for new objects, for the status page; None where there is no limit
        to report."""
