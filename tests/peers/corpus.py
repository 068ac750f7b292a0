"""pydicom's own test corpus, read from the installed package folders.

Never through ``pydicom.data.get_testdata_file(s)``: patterns there can trigger
downloads, and the test network is closed. The folders are globbed directly.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)
from pynetdicom.dsutils import split_dataset
from pynetdicom.presentation import AllStoragePresentationContexts

DATA = Path(pydicom.__file__).parent / "data"
FOLDERS = ("test_files", "charset_files")
UNCOMPRESSED = frozenset({ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian})
STORAGE_CLASSES = frozenset(str(cx.abstract_syntax) for cx in AllStoragePresentationContexts)
# Cut short on purpose (pydicom tests its reader with them). pydicom still reads them;
# DCMTK refuses to, so pynetdicom sends their bytes.
TRUNCATED = frozenset({"test_files/MR_truncated.dcm", "test_files/rtplan_truncated.dcm"})
_ENCODINGS = {
    (True, True): ImplicitVRLittleEndian,
    (False, True): ExplicitVRLittleEndian,
    (False, False): ExplicitVRBigEndian,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class CorpusFile:
    """One file pydicom can read, with the dataset bytes a C-STORE of it carries."""

    name: str  # relative to pydicom/data, e.g. "test_files/CT_small.dcm"
    path: Path
    dataset: bytes  # the encoded dataset, file meta excluded
    transfer_syntax: str
    sop_class_uid: str  # "" when the dataset has none
    sop_instance_uid: str
    study_uid: str
    series_uid: str
    media_sop_class_uid: str  # from the file meta, "" without one
    media_sop_instance_uid: str

    @property
    def storescu_sends(self) -> bool:
        """DCMTK storescu can send it unchanged: uncompressed, whole, with its UIDs."""
        return (
            self.transfer_syntax in UNCOMPRESSED
            and bool(self.sop_class_uid and self.sop_instance_uid)
            and self.name not in TRUNCATED
        )

    @property
    def command_sop_class(self) -> str:
        """The Affected SOP Class UID a sender would put in the C-STORE request."""
        for uid in (self.sop_class_uid, self.media_sop_class_uid):
            if uid in STORAGE_CLASSES:
                return uid
        return str(SecondaryCaptureImageStorage)

    @property
    def command_sop_instance(self) -> str:
        return (
            self.sop_instance_uid
            or self.media_sop_instance_uid
            or str(generate_uid(entropy_srcs=[self.name]))
        )


def all_paths() -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (DATA / folder).rglob("*") if p.is_file())


def name_of(path: Path) -> str:
    return path.relative_to(DATA).as_posix()


def read(path: Path) -> CorpusFile | None:
    """The file as pydicom reads it: a Part 10 file, or a bare dataset with a SOP class."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path)
            meta, offset = split_dataset(path)
        except InvalidDicomError:
            try:
                ds = pydicom.dcmread(path, force=True)
            except Exception:
                return None
            if "SOPClassUID" not in ds:
                return None
            meta, offset = pydicom.Dataset(), 0
    syntax = meta.get("TransferSyntaxUID") or _ENCODINGS[ds.original_encoding]
    return CorpusFile(
        name=name_of(path),
        path=path,
        dataset=path.read_bytes()[offset:],
        transfer_syntax=str(syntax),
        sop_class_uid=_uid(ds, "SOPClassUID"),
        sop_instance_uid=_uid(ds, "SOPInstanceUID"),
        study_uid=_uid(ds, "StudyInstanceUID"),
        series_uid=_uid(ds, "SeriesInstanceUID"),
        media_sop_class_uid=_uid(meta, "MediaStorageSOPClassUID"),
        media_sop_instance_uid=_uid(meta, "MediaStorageSOPInstanceUID"),
    )


def _uid(ds: pydicom.Dataset, keyword: str) -> str:
    return str(ds.get(keyword) or "").strip("\x00 ")


@functools.cache
def readable() -> tuple[CorpusFile, ...]:
    return tuple(f for f in map(read, all_paths()) if f is not None)


@functools.cache
def unreadable() -> tuple[Path, ...]:
    known = {f.path for f in readable()}
    return tuple(p for p in all_paths() if p not in known)
