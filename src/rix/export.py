"""``rix export``: studies to a folder or zip with a DICOMDIR (PS3.10, PS3.11 General Purpose).

pydicom's FileSet builds the DICOMDIR records from each instance's header; the instance
files themselves are then written as stored, byte for byte, so an export is exactly what
the archive holds (FileSet alone would re-encode every file).
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.fileset import FileSet

from rix import access, audit
from rix.archive import Archive
from rix.errors import NotFound
from rix.index import queries
from rix.index.attributes import BY_KEYWORD, Level

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


def _header(archive: Archive, item: queries.StoredInstance) -> Dataset:
    with archive.store.open(item.storage_key) as f:
        ds = dcmread(f, stop_before_pixels=True)
    for keyword, placeholder in _RECORD_KEYS.items():
        if not ds.get(keyword):
            setattr(ds, keyword, placeholder)
    return ds


def export_studies(
    archive: Archive,
    study_uids: list[str],
    destination: Path,
    progress: Callable[[int], None] | None = None,
    principal: access.Principal = access.SYSTEM,
) -> ExportSummary:
    """Write the studies under ``destination`` (a folder, or a ``.zip`` file); one export
    audit event per study, naming who ran it and where the copy went."""
    match = queries.Match(attribute=BY_KEYWORD["StudyInstanceUID"], value="\\".join(study_uids))
    with archive.engine.connect() as conn:
        # the command line runs on the server, as rix itself: it sees everything
        stored = queries.stored_instances(conn, [match], scope=None)
        found = {
            row["StudyInstanceUID"] for row in queries.find(conn, Level.STUDY, [match], scope=None)
        }
    missing = [uid for uid in study_uids if uid not in found]
    if missing:
        raise NotFound(f"no such studies: {', '.join(missing)}")
    as_zip = destination.suffix.lower() == ".zip"
    with tempfile.TemporaryDirectory(prefix="rix-export-") as tmp:
        folder = Path(tmp) / "media" if as_zip else destination
        folder.mkdir(parents=True, exist_ok=True)
        total = _write_fileset(archive, stored, folder, progress)
        if as_zip:
            _zip_folder(folder, destination)
    _audit(archive, principal, stored, destination)
    return ExportSummary(instances=len(stored), bytes=total, destination=destination)


def _audit(
    archive: Archive,
    principal: access.Principal,
    stored: list[queries.StoredInstance],
    destination: Path,
) -> None:
    with archive.engine.connect() as conn:
        who = queries.patients_by_pk(conn, {s.patient_pk for s in stored})
    counts: dict[str, list[int]] = {}
    for item in stored:
        counts.setdefault(item.study_uid, [item.patient_pk, 0])[1] += 1
    for study_uid, (patient_pk, n) in counts.items():
        ref = who.get(patient_pk)
        touched = access.Touched(
            study_uid=study_uid,
            patient="" if ref is None else ref.ref,
            nhs_number="" if ref is None else ref.nhs_number,
        )
        detail = {"instances": n, "destination": str(destination)}
        access.record(
            archive.writer.submit,
            principal,
            audit.Kind.EXPORT,
            audit.Outcome.SUCCESS,
            touched,
            detail,
        )


def _write_fileset(
    archive: Archive,
    stored: list[queries.StoredInstance],
    folder: Path,
    progress: Callable[[int], None] | None,
) -> int:
    fileset = FileSet()
    fileset.ID = "RIX_EXPORT"
    by_uid = {}
    for item in stored:
        fileset.add(_header(archive, item))
        by_uid[item.sop_uid] = item
    fileset.write(folder)
    total = 0
    for instance in fileset:
        item = by_uid[str(instance.SOPInstanceUID)]
        target = Path(instance.path)
        with archive.store.open(item.storage_key) as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 20)
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
