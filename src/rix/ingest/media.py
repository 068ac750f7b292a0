"""What outside media hold: the candidate instances in files, folders and zips.

A CD copied as a folder, a DICOMDIR with its files, or a zip, given to ``rix import`` or
uploaded through the portal: each file is either one candidate instance, or a zip whose
members are. Nothing is ever extracted to disk by its name, yet a member whose name
climbs out of the archive (``../``, an absolute path) is refused with that reason: media
that try it are not to be trusted. Broken and encrypted zips, and members that would
inflate past ``MAX_MEMBER``, are refused likewise.
"""

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MAX_MEMBER = 4 << 30  # one instance inflated: larger is a zip bomb or not an image
MAX_RATIO = 1000  # inflated / deflated: DICOM compresses 2-10x, a bomb 1000x and more
DICOMDIR_CLASS = b"1.2.840.10008.1.3.10"  # Media Storage Directory Storage


@dataclass(frozen=True, slots=True, kw_only=True)
class Item:
    """One candidate: declared file ``file``, or member ``member`` of that zip."""

    file: int
    member: str = ""
    label: str  # what the user calls it: the file's name, and the member's
    refused: str = ""  # why it cannot be read at all, if so


def is_zip(path: Path) -> bool:
    """A zip, and not a DICOM file that happens to contain zip signatures."""
    with path.open("rb") as f:
        head = f.read(132)
    if head[128:132] == b"DICM":
        return False
    return head[:4] in (b"PK\x03\x04", b"PK\x05\x06") or zipfile.is_zipfile(path)


def files(paths: list[Path]) -> list[tuple[str, Path]]:
    """``(name, path)`` of every file under ``paths``, folders walked in name order; a
    path that is not there is kept, for ``items`` to refuse with the reason."""
    found: list[tuple[str, Path]] = []
    for path in paths:
        inside = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        found.extend((str(p), p) for p in inside)
    return found


def items(paths: list[tuple[str, Path]]) -> Iterator[Item]:
    """Every candidate in the files, ``(name, path)`` in the order given."""
    for number, (name, path) in enumerate(paths):
        try:
            zipped = is_zip(path)
        except OSError as exc:
            yield Item(file=number, label=name, refused=f"unreadable: {exc}")
            continue
        if not zipped:
            yield Item(file=number, label=name)
            continue
        try:
            with zipfile.ZipFile(path) as archive:
                members = archive.infolist()
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            yield Item(file=number, label=name, refused=f"broken zip: {exc}")
            continue
        for info in members:
            if info.is_dir():
                continue
            label = f"{name}!{info.filename}"
            yield Item(file=number, member=info.filename, label=label, refused=_unsafe(info))


def _unsafe(info: zipfile.ZipInfo) -> str:
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or ".." in parts or (len(name) > 1 and name[1] == ":"):
        return "unsafe path in zip (absolute, or climbing out with ..): not read"
    if info.flag_bits & 0x1:
        return "encrypted zip member: not read"
    if info.file_size > MAX_MEMBER or info.file_size > MAX_RATIO * max(info.compress_size, 1):
        return "zip member inflates too far (a zip bomb?): not read"
    return ""


class Reader:
    """Reads candidates' bytes, each zip opened once (members are read from several
    threads: ``zipfile`` serialises reads of the shared file itself)."""

    def __init__(self, paths: list[tuple[str, Path]]) -> None:
        self.paths = paths
        self._zips: dict[int, zipfile.ZipFile] = {}
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stack.close()

    def read(self, item: Item) -> bytes:
        """The candidate's bytes; ``OSError`` or ``zipfile.BadZipFile`` if unreadable."""
        path = self.paths[item.file][1]
        if not item.member:
            return path.read_bytes()
        archive = self._zips.get(item.file)
        if archive is None:
            archive = self._stack.enter_context(zipfile.ZipFile(path))
            self._zips[item.file] = archive
        return archive.read(item.member)


def is_dicomdir(data: bytes) -> bool:
    """A media directory (PS3.10 7.2) describes the files; it is not an image to store."""
    return data[128:132] == b"DICM" and DICOMDIR_CLASS in data[132:400]
