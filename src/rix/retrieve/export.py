"""``rix export``: studies to a folder or zip with a DICOMDIR (PS3.10, PS3.11 General Purpose).

pydicom's FileSet builds the DICOMDIR records from each instance's header; the instance
files themselves are then written as stored, byte for byte, so an export is exactly what
the archive holds (FileSet alone would re-encode every file).

The one exception is outside media reconciled to a local record (``rix.reconcile``):
stored naming the outside patient, they are written naming the local record, the outside
ID kept in Other Patient IDs Sequence (``rix.region.identity.outgoing``), in the files and
the DICOMDIR alike. Media leave rix's control: a CD burnt from a download or an export
is read into another hospital's PACS, which would file the images under the outside ID
(often with no issuer) - the wrong-patient merge the reconciliation was made to prevent.
Every other file is still the stored one, byte for byte.
"""

from __future__ import annotations

import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.fileset import FileSet

from rix import access, audit
from rix.access import trail
from rix.archive import Archive
from rix.errors import NotFound
from rix.index import queries
from rix.index.attributes import BY_KEYWORD, Level
from rix.region import identity
from rix.retrieve import copies

# Type 1 keys of DICOMDIR records (PS3.3 F.5); an instance lacking one gets this placeholder
# in its directory record only, never in the exported file itself.
_RECORD_KEYS = {
    "PatientID": "UNKNOWN",
    "StudyDate": "19000101",
    "StudyTime": "000000",
    "StudyID": "0",
    "Modality": "OT",
    "SeriesNumber": "0",
    "InstanceNumber": "0",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportSummary:
    instances: int
    bytes: int
    destination: Path


def _header(
    archive: Archive, item: queries.StoredInstance, correction: identity.Coercion | None
) -> Dataset:
    with archive.store.open(item.storage_key) as f:
        ds = dcmread(f, stop_before_pixels=True)
    if correction is not None:
        correction.apply(ds)
    for keyword, placeholder in _RECORD_KEYS.items():
        if not ds.get(keyword):
            setattr(ds, keyword, placeholder)
    return ds


def _stored(
    archive: Archive, study_uids: list[str], principal: access.Principal
) -> tuple[list[queries.StoredInstance], identity.Outgoing]:
    """The studies' instances the principal may see, and the identity each is written
    with (no destination trust: the archive's own); NotFound names any study missing."""
    match = queries.Match(attribute=BY_KEYWORD["StudyInstanceUID"], value="\\".join(study_uids))
    scope = access.scope(principal)
    with archive.engine.connect() as conn:
        stored = queries.stored_instances(conn, [match], scope=scope)
        found = {
            row["StudyInstanceUID"] for row in queries.find(conn, Level.STUDY, [match], scope=scope)
        }
        outgoing = identity.outgoing(conn, stored, None)
    missing = [uid for uid in study_uids if uid not in found]
    if missing:
        raise NotFound(f"no such studies: {', '.join(missing)}")
    return stored, outgoing


def export_studies(
    archive: Archive,
    study_uids: list[str],
    destination: Path,
    progress: Callable[[int], None] | None = None,
    principal: access.Principal = access.SYSTEM,
) -> ExportSummary:
    """Write the studies under ``destination`` (a folder, or a ``.zip`` file); one export
    audit event per study, naming who ran it and where the copy went. The command line
    runs on the server as rix itself (``access.SYSTEM``), which sees everything. Files
    are as stored, reconciled outside media excepted (module docstring)."""
    stored, outgoing = _stored(archive, study_uids, principal)
    as_zip = destination.suffix.lower() == ".zip"
    with tempfile.TemporaryDirectory(prefix="rix-export-") as tmp:
        folder = Path(tmp) / "media" if as_zip else destination
        folder.mkdir(parents=True, exist_ok=True)
        total = _write_fileset(archive, stored, outgoing, folder, progress)
        if as_zip:
            _zip_folder(folder, destination)
    _audit(archive, principal, stored, str(destination))
    return ExportSummary(instances=len(stored), bytes=total, destination=destination)


def _audit(
    archive: Archive,
    principal: access.Principal,
    stored: list[queries.StoredInstance],
    destination: str,
) -> None:
    with archive.engine.connect() as conn:
        who = queries.patients_by_pk(conn, {s.patient_pk for s in stored})
    counts: dict[str, list[int]] = {}
    for item in stored:
        counts.setdefault(item.study_uid, [item.patient_pk, 0])[1] += 1
    for study_uid, (patient_pk, n) in counts.items():
        ref = who.get(patient_pk)
        touched = trail.Touched(
            study_uid=study_uid,
            patient="" if ref is None else ref.ref,
            nhs_number="" if ref is None else ref.nhs_number,
        )
        detail = {"instances": n, "destination": destination}
        trail.record(
            archive.writer.submit,
            principal,
            audit.Kind.EXPORT,
            audit.Outcome.SUCCESS,
            touched,
            detail,
        )


def _fileset(
    archive: Archive,
    stored: list[queries.StoredInstance],
    outgoing: identity.Outgoing,
    folder: Path,
) -> list[tuple[str, queries.StoredInstance]]:
    """Write the DICOMDIR into ``folder``, with header-only stand-ins of the instances at
    their File IDs; returns (path under the folder, instance) in DICOMDIR order."""
    fileset = FileSet()
    fileset.ID = "RIX_EXPORT"
    by_uid = {}
    for item in stored:
        fileset.add(_header(archive, item, outgoing.of(item)))
        by_uid[item.sop_uid] = item
    fileset.write(folder)
    return [
        (Path(i.path).relative_to(folder).as_posix(), by_uid[str(i.SOPInstanceUID)])
        for i in fileset
    ]


def _write_fileset(
    archive: Archive,
    stored: list[queries.StoredInstance],
    outgoing: identity.Outgoing,
    folder: Path,
    progress: Callable[[int], None] | None,
) -> int:
    total = 0
    for name, item in _fileset(archive, stored, outgoing, folder):
        target = folder / name
        with target.open("wb") as dst:
            for piece in copies.streamed(archive.store, item, outgoing.of(item)):
                dst.write(piece)
        total += target.stat().st_size
        if progress is not None:
            progress(1)
    return total


def _zip_folder(folder: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_STORED) as out:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                out.write(path, path.relative_to(folder).as_posix())


@dataclass(frozen=True, slots=True, kw_only=True)
class Download:
    """A zip of studies as it will be streamed: its exact length is known before the
    first byte, so a browser shows the progress of a large study."""

    length: int | None  # None only for a ZIP64 archive (over 4 GiB or 65,535 files)
    chunks: Iterator[bytes]
    instances: int


class _Sink:
    """Where ``zipfile`` writes: without ``tell`` it is unseekable to zipfile, which then
    streams with data descriptors; the stream takes what was written after each piece."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes, /) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out


def _stored_zip_length(entries: list[tuple[str, int]]) -> int | None:
    """Bytes of a ZIP_STORED archive that ``zipfile`` writes to an unseekable stream:
    per file a local header (30 + name), the data and a data descriptor (16), a central
    directory entry (46 + name), and the end record (22) (APPNOTE 4.3). Beyond the
    classic limits ZIP64 records appear: then the length is not promised."""
    total = sum(30 + len(n.encode()) + size + 16 for n, size in entries)
    central = sum(46 + len(n.encode()) for n, _ in entries)
    if total + central + 22 >= zipfile.ZIP64_LIMIT or len(entries) >= 0xFFFF:
        return None
    if any(size * 1.05 > zipfile.ZIP64_LIMIT for _, size in entries):
        return None
    return total + central + 22


def zip_for_download(
    archive: Archive, study_uids: list[str], principal: access.Principal, source: str
) -> Download:
    """The studies as a zip with a DICOMDIR at its root (PS3.10 media, as a CD would
    hold them), every instance file exactly as stored; one export audit event per study.
    Only what ``principal`` may see is included (``rix.access``).

    Reconciled outside media are the exception: their files name the local record the
    clinician sees in rix, not the outside patient (module docstring). A download is as
    likely to be burnt to a CD for another hospital as opened on a desk, and once out of
    rix nothing tells the two apart. Those files are encoded twice, once here for their
    length and again as they stream, rather than all held in memory until they go."""
    stored, outgoing = _stored(archive, study_uids, principal)
    with tempfile.TemporaryDirectory(prefix="rix-download-") as tmp:
        entries = _fileset(archive, stored, outgoing, Path(tmp))
        dicomdir = (Path(tmp) / "DICOMDIR").read_bytes()
    sizes = {item.sop_uid: item.size for item in stored}
    for item in stored:
        if (correction := outgoing.of(item)) is not None:
            sizes[item.sop_uid] = len(copies.encoded(archive.store, item, correction))
    names = [("DICOMDIR", len(dicomdir))] + [(n, sizes[item.sop_uid]) for n, item in entries]
    _audit(archive, principal, stored, f"download to {source}")

    def chunks() -> Iterator[bytes]:
        sink = _Sink()
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as out:
            with out.open(_entry("DICOMDIR", len(dicomdir)), "w") as dst:
                dst.write(dicomdir)
            yield sink.take()
            for name, item in entries:
                with out.open(_entry(name, sizes[item.sop_uid]), "w") as dst:
                    for piece in copies.streamed(archive.store, item, outgoing.of(item)):
                        dst.write(piece)
                        yield sink.take()
                yield sink.take()
        yield sink.take()

    return Download(length=_stored_zip_length(names), chunks=chunks(), instances=len(stored))


def _entry(name: str, size: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
    info.compress_type = zipfile.ZIP_STORED
    info.file_size = size
    return info
