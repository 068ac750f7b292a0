"""``rix import``: files, folders, zip files and CD/DVD media through the one ingest path.

Media from other hospitals are messy: zips, DICOMDIR files, ISO 9660 names without
extensions, the odd text file. Everything that is a DICOM instance is stored; everything
else is reported with the reason, and re-running the import stores nothing twice. The
portal's import of outside media (``rix.ingest.reconcile``) reads and stores each file
the same way and gives the same ``Summary``.
"""

from __future__ import annotations

import dataclasses
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from rix import access
from rix.access import trail
from rix.archive import Archive
from rix.errors import RixError
from rix.index import records
from rix.ingest import Outcome, ingest, media, received_from_file
from rix.region.trusts import Trust

WORKERS = 4  # concurrent ingests share index commits (group commit) and overlap fsyncs


class FileOutcome(StrEnum):
    """What became of one file of the media."""

    STORED = "stored"
    PRESENT = "present"  # the same instance, byte for byte, was already stored
    DUPLICATE = "duplicate"  # another copy of the instance is stored: kept aside
    REFUSED = "refused"  # not stored, with the reason
    SKIPPED = "skipped"  # not an instance to store (a DICOMDIR), or left out by the user


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    outcome: FileOutcome
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """A file not stored: what the user calls it and why."""

    file: str
    reason: str


@dataclass(slots=True, kw_only=True)
class Summary:
    """What an import did with every file, added up as files complete: the command line
    prints it, the portal's import keeps it as JSON (``as_json``) for its page."""

    stored: int = 0
    already_present: int = 0
    duplicates_kept: int = 0
    refused: list[Problem] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Summary:
        """A summary ``as_json`` wrote; or a scan's, which holds only what it refused
        and skipped, so that the store adds to one account of the media."""
        return cls(
            stored=document.get("stored", 0),
            already_present=document.get("already_present", 0),
            duplicates_kept=document.get("duplicates_kept", 0),
            refused=[Problem(**p) for p in document.get("refused", [])],
            skipped=[Problem(**p) for p in document.get("skipped", [])],
        )

    def add(self, label: str, result: Result) -> None:
        if result.outcome is FileOutcome.REFUSED:
            self.refused.append(Problem(file=label, reason=result.reason))
        elif result.outcome is FileOutcome.SKIPPED:
            self.skipped.append(Problem(file=label, reason=result.reason))
        elif result.outcome is FileOutcome.STORED:
            self.stored += 1
        elif result.outcome is FileOutcome.PRESENT:
            self.already_present += 1
        else:
            self.duplicates_kept += 1

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def readable(reader: media.Reader, item: media.Item) -> bytes | Result:
    """The candidate's bytes, or why it is not an instance to store."""
    if item.refused:
        return Result(outcome=FileOutcome.REFUSED, reason=item.refused)
    try:
        data = reader.read(item)
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        return Result(outcome=FileOutcome.REFUSED, reason=f"unreadable: {exc}")
    if media.is_dicomdir(data):
        return Result(
            outcome=FileOutcome.SKIPPED, reason="DICOMDIR (media directory, not an instance)"
        )
    return data


def import_one(
    archive: Archive,
    reader: media.Reader,
    item: media.Item,
    *,
    trust: Trust | None,
    tally: trail.StoreTally,
    reconciled: records.Reconciled | None = None,
) -> Result:
    """One candidate of the media read and stored as ``trust``'s through the one ingest
    path; ``reconciled``: the local record its patient was matched to."""
    data = readable(reader, item)
    if isinstance(data, Result):
        return data
    try:
        received = received_from_file(data, source="import", trust=trust)
        result = ingest(archive, dataclasses.replace(received, reconciled=reconciled))
    except RixError as exc:
        tally.failed(exc.reason)
        return Result(outcome=FileOutcome.REFUSED, reason=exc.reason)
    tally.stored(result)
    if result.outcome is Outcome.STORED:
        return Result(outcome=FileOutcome.STORED)
    if result.outcome is Outcome.ALREADY_PRESENT:
        return Result(outcome=FileOutcome.PRESENT)
    return Result(outcome=FileOutcome.DUPLICATE, reason=result.reason)


def import_paths(
    archive: Archive,
    paths: list[Path],
    progress: Callable[[int], None] | None = None,
    *,
    trust: Trust | None = None,
    principal: access.Principal = access.SYSTEM,
) -> Summary:
    """Import everything under ``paths`` as ``trust``'s (the trust whose media it is);
    ``progress(n)`` is called as files complete; one store event per study is audited."""
    summary = Summary()
    tally = trail.StoreTally()
    files = media.files(paths)
    with media.Reader(files) as reader, ThreadPoolExecutor(max_workers=WORKERS) as pool:
        items = list(media.items(files))
        results = pool.map(
            lambda i: import_one(archive, reader, i, trust=trust, tally=tally), items
        )
        for item, result in zip(items, results, strict=True):
            summary.add(item.label, result)
            if progress is not None:
                progress(1)
    tally.record(archive.writer.submit, principal)
    return summary


def count_sources(paths: list[Path]) -> int:
    """How many candidates ``import_paths`` will read: files, and members of zips."""
    return sum(1 for _ in media.items(media.files(paths)))
