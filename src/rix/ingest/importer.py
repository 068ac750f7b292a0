"""``rix import``: files, folders, zip files and CD/DVD media through the one ingest path.

Media from other hospitals are messy: nested zips, DICOMDIR files, ISO 9660 names without
extensions, the odd text file. Everything that is a DICOM instance is stored; everything
else is reported with the reason, and re-running the import stores nothing twice.
"""

from __future__ import annotations

import dataclasses
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from rix import access
from rix.access import trail
from rix.archive import Archive
from rix.errors import RixError
from rix.index import write
from rix.ingest import Outcome, ingest, received_from_file
from rix.region.trusts import Trust

DICOMDIR_CLASS = b"1.2.840.10008.1.3.10"
WORKERS = 4  # concurrent ingests share index commits (group commit) and overlap fsyncs


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """One candidate file: a path, or a member of a zip file."""

    label: str
    read: Callable[[], bytes]


@dataclass
class ImportSummary:
    stored: int = 0
    already_present: int = 0
    duplicates_kept: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def reasons(self) -> Counter[str]:
        return Counter(reason for _label, reason in self.rejected)


def sources(paths: list[Path]) -> Iterator[Source]:
    """Every file under ``paths``, recursing into folders and zip files."""
    for path in paths:
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                yield from _file_sources(child)
        elif path.is_file():
            yield from _file_sources(path)
        else:
            yield Source(label=str(path), read=_missing(path))


def _missing(path: Path) -> Callable[[], bytes]:
    def read() -> bytes:
        raise FileNotFoundError(f"{path} does not exist")

    return read


def _file_sources(path: Path) -> Iterator[Source]:
    if zipfile.is_zipfile(path) and not _looks_like_dicom(path):
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
        for member in members:
            yield Source(label=f"{path}!{member.filename}", read=_zip_reader(path, member.filename))
        return
    yield Source(label=str(path), read=path.read_bytes)


def _looks_like_dicom(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(132)
    return head[128:132] == b"DICM"


def _zip_reader(path: Path, name: str) -> Callable[[], bytes]:
    def read() -> bytes:
        with zipfile.ZipFile(path) as archive:
            return archive.read(name)

    return read


def _is_dicomdir(data: bytes) -> bool:
    """A media directory (PS3.10 7.2) describes the files; it is not an image to store."""
    return data[128:132] == b"DICM" and DICOMDIR_CLASS in data[132:400]


def import_one(
    archive: Archive, source: Source, trust: Trust | None, tally: trail.StoreTally
) -> tuple[str, str]:
    """(kind, reason) for one source: stored, present, duplicate, rejected or skipped."""
    try:
        data = source.read()
    except (OSError, zipfile.BadZipFile) as exc:
        return "rejected", f"unreadable: {exc}"
    if _is_dicomdir(data):
        return "skipped", "DICOMDIR (media directory, not an instance)"
    return store_bytes(archive, data, trust=trust, tally=tally)


def store_bytes(
    archive: Archive,
    data: bytes,
    *,
    trust: Trust | None,
    tally: trail.StoreTally,
    reconciled: write.Reconciled | None = None,
) -> tuple[str, str]:
    """(kind, reason) for one file of media through the one ingest path: stored, present,
    duplicate or rejected; ``reconciled``: the local record its patient was matched to."""
    try:
        received = received_from_file(data, source="import", trust=trust)
        result = ingest(archive, dataclasses.replace(received, reconciled=reconciled))
    except RixError as exc:
        tally.failed(exc.reason)
        return "rejected", exc.reason
    tally.stored(result)
    if result.outcome is Outcome.STORED:
        return "stored", ""
    if result.outcome is Outcome.ALREADY_PRESENT:
        return "present", ""
    return "duplicate", result.reason


def import_paths(
    archive: Archive,
    paths: list[Path],
    progress: Callable[[int], None] | None = None,
    *,
    trust: Trust | None = None,
    principal: access.Principal = access.SYSTEM,
) -> ImportSummary:
    """Import everything under ``paths`` as ``trust``'s (the trust whose media it is);
    ``progress(n)`` is called as files complete; one store event per study is audited."""
    summary = ImportSummary()
    tally = trail.StoreTally()
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        items = list(sources(paths))
        for source, (kind, reason) in zip(
            items, pool.map(lambda s: import_one(archive, s, trust, tally), items), strict=True
        ):
            if kind == "stored":
                summary.stored += 1
            elif kind == "present":
                summary.already_present += 1
            elif kind == "duplicate":
                summary.duplicates_kept += 1
            elif kind == "skipped":
                summary.skipped.append((source.label, reason))
            else:
                summary.rejected.append((source.label, reason))
            if progress is not None:
                progress(1)
    tally.record(archive.writer.submit, principal)
    return summary


def count_sources(paths: list[Path]) -> int:
    return sum(1 for _ in sources(paths))
