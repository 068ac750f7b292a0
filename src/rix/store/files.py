"""Objects as files in a folder: the embedded default.

Durability (PS3.4 says nothing; our users do): bytes go to a temporary name in the final
folder, are fsynced, then hard-linked to the final name, which fails if it exists, so a
key is never overwritten and a crash leaves either no file or a whole one. The folder is
fsynced after the link so the name itself survives power loss.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from rix.store import ObjectExists, ObjectMissing, check_key


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._known_dirs: set[Path] = set()
        self._lock = threading.Lock()

    def local_path(self, key: str) -> Path:
        return self.root / check_key(key)

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free

    def _ensure_dir(self, folder: Path) -> None:
        if folder in self._known_dirs:
            return
        missing: list[Path] = []
        probe = folder
        while not probe.exists():
            missing.append(probe)
            probe = probe.parent
        for new in reversed(missing):
            with contextlib.suppress(FileExistsError):
                new.mkdir()
            _fsync_dir(new.parent)
        with self._lock:
            self._known_dirs.add(folder)

    def put(self, key: str, data: bytes) -> None:
        final = self.local_path(key)
        self._ensure_dir(final.parent)
        tmp = final.parent / f".{final.name}.{uuid.uuid4().hex}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, final)
        except FileExistsError:
            raise ObjectExists(f"object {key} already stored") from None
        finally:
            os.unlink(tmp)
        _fsync_dir(final.parent)

    def open(self, key: str) -> BinaryIO:
        try:
            return self.local_path(key).open("rb")
        except FileNotFoundError:
            raise ObjectMissing(f"object {key} is missing from the store") from None

    def get_range(self, key: str, start: int, length: int) -> bytes:
        with self.open(key) as f:
            f.seek(start)
            return f.read(length)

    def delete(self, key: str) -> None:
        path = self.local_path(key)
        path.unlink(missing_ok=True)
        _fsync_dir(path.parent)

    def all_keys(self, prefix: str = "") -> Iterator[str]:
        base = self.root / prefix if prefix else self.root
        for folder, dirs, files in os.walk(base):
            dirs.sort()
            for name in sorted(files):
                if name.startswith("."):
                    continue  # temporary files of an interrupted put
                yield str(Path(folder, name).relative_to(self.root))

    def remove_leftovers(self) -> int:
        """Delete temporary files of puts interrupted by a crash; they were never acknowledged."""
        removed = 0
        for folder, _dirs, files in os.walk(self.root):
            for name in files:
                if name.startswith(".") and name.endswith(".tmp"):
                    Path(folder, name).unlink(missing_ok=True)
                    removed += 1
        return removed


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
