"""An in-memory twin of the object store for unit tests; integration tests use files."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from rix.store import ObjectExists, ObjectMissing, check_key


class MemoryStore:
    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes) -> None:
        with self._lock:
            if check_key(key) in self._objects:
                raise ObjectExists(f"object {key} already stored")
            self._objects[key] = bytes(data)

    def open(self, key: str) -> BinaryIO:
        return io.BytesIO(self._object(key))

    def get_range(self, key: str, start: int, length: int) -> bytes:
        return self._object(key)[start : start + length]

    def _object(self, key: str) -> bytes:
        try:
            return self._objects[key]
        except KeyError:
            raise ObjectMissing(f"object {key} is missing from the store") from None

    def delete(self, key: str) -> None:
        with self._lock:
            self._objects.pop(key, None)

    def all_keys(self, prefix: str = "") -> Iterator[str]:
        yield from sorted(k for k in list(self._objects) if k.startswith(prefix))

    def local_path(self, key: str) -> Path | None:
        return None  # no files: senders decode and encode a copy instead

    def free_bytes(self) -> int | None:
        return None
