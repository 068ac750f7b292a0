"""Bad C-STORE input: a failure status with a reason, nothing stored, the server unharmed.

pynetdicom sends each Data Set as raw bytes (PS3.4 B.2.3: 0xC000 Cannot understand), on
its own association; afterwards the server must still answer C-ECHO, C-FIND must not
see the instance, and no file may have appeared under ``objects/``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from pydicom.dataset import Dataset
from pynetdicom import build_context

from tests.dicom.synthetic import uid
from tests.peers import corpus, dcmtk, scu
from tests.peers.objects import object_keys
from tests.peers.server import RixServer

CT = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT, IMPLICIT = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2"
CANNOT_UNDERSTAND = 0xC000
# pydicom warns when told to write the invalid UIDs these tests are about
pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR UI")


def instance(case: str) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = CT
    ds.SOPInstanceUID = uid("bad", case)
    ds.StudyInstanceUID = uid("bad", case, "study")
    ds.SeriesInstanceUID = uid("bad", case, "series")
    ds.PatientID = "BAD-INPUT"
    ds.PatientName = "Bad^Input"
    ds.Modality = "CT"
    ds.PixelData = b"\x00\x01" * 512
    ds["PixelData"].VR = "OW"
    return ds


def without(keyword: str) -> Callable[[Dataset], None]:
    return lambda ds: delattr(ds, keyword)


def setting(keyword: str, value: str) -> Callable[[Dataset], None]:
    return lambda ds: setattr(ds, keyword, value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Bad:
    """A C-STORE request: the command's SOP Instance UID and the Data Set bytes."""

    sop_instance: str
    dataset: bytes
    transfer_syntax: str = EXPLICIT


def encoded(case: str, change: Callable[[Dataset], None] | None = None) -> Bad:
    ds = instance(case)
    command_uid = str(ds.SOPInstanceUID)
    if change is not None:
        change(ds)
    return Bad(sop_instance=command_uid, dataset=scu.encode(ds))


def truncated() -> Bad:
    bad = encoded("truncated")
    return Bad(sop_instance=bad.sop_instance, dataset=bad.dataset[: len(bad.dataset) - 300])


def garbage() -> Bad:
    return Bad(sop_instance=uid("bad", "garbage"), dataset=bytes(range(256)) * 8)


def not_dicom() -> Bad:
    text = (corpus.DATA / "test_files" / "README.txt").read_bytes()
    return Bad(sop_instance=uid("bad", "not-dicom"), dataset=text, transfer_syntax=IMPLICIT)


def path_in_sop_instance_uid() -> Bad:
    """In the command too: a storage path built from it would leave the data folder."""
    bad = encoded("path-sop", setting("SOPInstanceUID", "1.2.3/../x"))
    return Bad(sop_instance="1.2.3/../x", dataset=bad.dataset)


def other_instance_in_command() -> Bad:
    bad = encoded("mismatch")
    return Bad(sop_instance=uid("bad", "another"), dataset=bad.dataset)


CASES: dict[str, tuple[Callable[[], Bad], str]] = {
    "truncated-file": (truncated, "truncated"),
    "garbage-bytes": (garbage, "not explicit VR"),
    "not-a-dicom-file": (not_dicom, "truncated"),
    "no-sop-instance-uid": (
        lambda: encoded("no-sop", without("SOPInstanceUID")),
        "SOPInstanceUID is missing",
    ),
    "no-study-instance-uid": (
        lambda: encoded("no-study", without("StudyInstanceUID")),
        "StudyInstanceUID is missing",
    ),
    "no-series-instance-uid": (
        lambda: encoded("no-series", without("SeriesInstanceUID")),
        "SeriesInstanceUID is missing",
    ),
    "path-in-study-uid": (
        lambda: encoded("path-study", setting("StudyInstanceUID", "1.2.3/../x")),
        "not a valid DICOM UID",
    ),
    "path-in-series-uid": (
        lambda: encoded("path-series", setting("SeriesInstanceUID", "../../../etc")),
        "not a valid DICOM UID",
    ),
    "path-in-sop-instance-uid": (path_in_sop_instance_uid, "not a valid DICOM UID"),
    "command-names-another-instance": (other_instance_in_command, "differs"),
}


def send(server: RixServer, bad: Bad) -> Dataset:
    with scu.association(server.dicom_port, [build_context(CT, [bad.transfer_syntax])]) as assoc:
        return scu.store_bytes(
            assoc,
            sop_class=CT,
            sop_instance=bad.sop_instance,
            transfer_syntax=bad.transfer_syntax,
            dataset=bad.dataset,
        )


@pytest.mark.parametrize(("make", "reason"), CASES.values(), ids=CASES.keys())
def test_bad_dataset_is_refused_with_a_reason_and_nothing_is_stored(
    rix_server: RixServer, make: Callable[[], Bad], reason: str
) -> None:
    bad = make()
    before = object_keys(rix_server.data)
    status = send(rix_server, bad)
    assert status.Status == CANNOT_UNDERSTAND
    assert reason in status.get("ErrorComment", ""), status
    assert object_keys(rix_server.data) == before
    found = scu.find(rix_server.dicom_port, scu.query("IMAGE", SOPInstanceUID=bad.sop_instance))
    assert (found.status, found.matches) == (0x0000, [])
    assert dcmtk.echoscu(rix_server.dicom_port) == 0


def test_bad_datasets_on_one_association_each_get_an_answer(rix_server: RixServer) -> None:
    """A refused Data Set does not end the association: the next one is still answered."""
    bads = [make() for make, _reason in CASES.values() if make is not not_dicom]
    before = object_keys(rix_server.data)
    with scu.association(rix_server.dicom_port, [build_context(CT, [EXPLICIT])]) as assoc:
        statuses = [
            int(
                scu.store_bytes(
                    assoc,
                    sop_class=CT,
                    sop_instance=b.sop_instance,
                    transfer_syntax=EXPLICIT,
                    dataset=b.dataset,
                ).Status
            )
            for b in bads
        ]
        good = instance("after-the-bad-ones")
        last = scu.store_bytes(
            assoc,
            sop_class=CT,
            sop_instance=str(good.SOPInstanceUID),
            transfer_syntax=EXPLICIT,
            dataset=scu.encode(good),
        )
    assert statuses == [CANNOT_UNDERSTAND] * len(bads)
    assert last.Status == 0x0000
    assert len(object_keys(rix_server.data) - before) == 1


def test_dataset_of_another_sop_class_answers_a900(rix_server: RixServer) -> None:
    """PS3.4 B.2.3: Error: Data Set does not match SOP Class (0xA900)."""
    bad = encoded("other-class", setting("SOPClassUID", "1.2.840.10008.5.1.4.1.1.4"))
    before = object_keys(rix_server.data)
    status = send(rix_server, bad)
    assert object_keys(rix_server.data) == before
    assert "differs" in status.get("ErrorComment", "")
    assert status.Status == 0xA900
