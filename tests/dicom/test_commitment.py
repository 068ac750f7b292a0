"""Storage Commitment Push Model SCP (PS3.4 Annex J), pynetdicom as the modality.

N-ACTION asks for commitment; the answer is an N-EVENT-REPORT on the same association:
event type 1 when every instance is committed, 2 when some failed, each failure with
its Failure Reason (PS3.4 J.3.2.1.1.2).
"""

from __future__ import annotations

import queue
from dataclasses import dataclass
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import build_context, evt

from tests.dicom import synthetic
from tests.dicom.synthetic import Study
from tests.peers import scu
from tests.peers.objects import instance_key
from tests.peers.server import RixServer, free_port

STORAGE_COMMITMENT = "1.2.840.10008.1.20.1"
STORAGE_COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"
REQUEST_COMMITMENT = 1  # Action Type ID, PS3.4 J.3.2.1
ALL_COMMITTED, SOME_FAILED = 1, 2  # Event Type IDs, PS3.4 J.3.3.1
PROCESSING_FAILURE, NO_SUCH_OBJECT, CLASS_INSTANCE_CONFLICT = 0x0110, 0x0112, 0x0119
CT, MR = synthetic.SOP_CLASS["CT"], synthetic.SOP_CLASS["MR"]

COMMIT = Study(
    key="COMMIT",
    patient=synthetic.AUX,
    date="20240601",
    time="110000",
    accession="ACC-COMMIT",
    description="CT COMMIT",
    series=(("CT", 4),),
)


def ref(number: int) -> tuple[str, str]:
    return (CT, COMMIT.instance_uid(0, number))


UNKNOWN = (CT, synthetic.uid("never", "stored"))


@pytest.fixture(scope="module")
def stored(rix_server: RixServer) -> Study:
    assert scu.store_datasets(rix_server.dicom_port, synthetic.instances(COMMIT)) == [0] * 4
    return COMMIT


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    action_status: int
    event_type: int
    info: Dataset

    def committed(self) -> list[tuple[str, str]]:
        return sorted(
            (str(i.ReferencedSOPClassUID), str(i.ReferencedSOPInstanceUID))
            for i in self.info.get("ReferencedSOPSequence", [])
        )

    def failed(self) -> list[tuple[str, str, int]]:
        return sorted(
            (str(i.ReferencedSOPClassUID), str(i.ReferencedSOPInstanceUID), int(i.FailureReason))
            for i in self.info.get("FailedSOPSequence", [])
        )


def request_commitment(server: RixServer, refs: list[tuple[str, str]]) -> Report:
    reports: queue.Queue[tuple[int, Dataset]] = queue.Queue()

    def on_report(event: Any) -> tuple[int, None]:
        reports.put((int(event.request.EventTypeID), event.event_information))
        return 0x0000, None

    action = Dataset()
    action.TransactionUID = generate_uid()
    action.ReferencedSOPSequence = [_item(c, i) for c, i in refs]
    with scu.association(
        server.dicom_port,
        [build_context(STORAGE_COMMITMENT)],
        evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)],
    ) as assoc:
        status, _reply = assoc.send_n_action(
            action, REQUEST_COMMITMENT, STORAGE_COMMITMENT, STORAGE_COMMITMENT_INSTANCE
        )
        event_type, info = reports.get(timeout=20)
    assert info.TransactionUID == action.TransactionUID
    return Report(action_status=int(status.Status), event_type=event_type, info=info)


def _item(sop_class: str, sop_instance: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = sop_instance
    return item


def test_stored_instances_are_committed_in_event_type_1(
    rix_server: RixServer, stored: Study
) -> None:
    report = request_commitment(rix_server, [ref(1), ref(2)])
    assert (report.action_status, report.event_type) == (0x0000, ALL_COMMITTED)
    assert report.committed() == sorted([ref(1), ref(2)])
    assert "FailedSOPSequence" not in report.info
    assert report.info.RetrieveAETitle == "RIX"


def test_unknown_instance_fails_with_no_such_object_0112(
    rix_server: RixServer, stored: Study
) -> None:
    report = request_commitment(rix_server, [ref(1), ref(2), UNKNOWN])
    assert (report.action_status, report.event_type) == (0x0000, SOME_FAILED)
    assert report.committed() == sorted([ref(1), ref(2)])
    assert report.failed() == [(*UNKNOWN, NO_SUCH_OBJECT)]


def test_instance_altered_on_disk_is_reported_failed(rix_server: RixServer, stored: Study) -> None:
    path = (
        rix_server.data
        / "objects"
        / instance_key(COMMIT.uid, COMMIT.series_uid(0), COMMIT.instance_uid(0, 3))
    )
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # one bit pattern of the last byte flipped: the content no longer matches
    path.write_bytes(bytes(data))
    report = request_commitment(rix_server, [ref(3), ref(4)])
    assert report.event_type == SOME_FAILED
    assert report.committed() == [ref(4)]
    assert report.failed() == [(*ref(3), PROCESSING_FAILURE)]


def test_wrong_sop_class_fails_with_class_instance_conflict_0119(
    rix_server: RixServer, stored: Study
) -> None:
    wrong = (MR, COMMIT.instance_uid(0, 1))
    report = request_commitment(rix_server, [wrong])
    assert report.event_type == SOME_FAILED
    assert (report.committed(), report.failed()) == ([], [(*wrong, CLASS_INSTANCE_CONFLICT)])


def test_report_comes_on_a_new_association_when_the_requester_has_released(
    rix_server: RixServer, stored: Study
) -> None:
    """PS3.4 J.3.3: the SCP may send the report on an association it opens itself, to the
    requester's AE as the AE registry knows it, taking the SCP role."""
    reports: queue.Queue[tuple[int, Dataset]] = queue.Queue()

    def on_report(event: Any) -> tuple[int, None]:
        reports.put((int(event.request.EventTypeID), event.event_information))
        return 0x0000, None

    modality = scu.new_ae("MODALITY")
    modality.add_supported_context(STORAGE_COMMITMENT, scu_role=True, scp_role=True)
    port = free_port()
    server = modality.start_server(
        (scu.HOST, port), block=False,
        evt_handlers=[*scu.NODELAY, (evt.EVT_N_EVENT_REPORT, on_report)],
    )  # fmt: skip
    try:
        rix_server.add_ae("MODALITY", scu.HOST, port)
        action = Dataset()
        action.TransactionUID = generate_uid()
        action.ReferencedSOPSequence = [_item(*ref(1)), _item(*UNKNOWN)]
        with scu.association(
            rix_server.dicom_port, [build_context(STORAGE_COMMITMENT)], calling="MODALITY"
        ) as assoc:
            status, _reply = assoc.send_n_action(
                action, REQUEST_COMMITMENT, STORAGE_COMMITMENT, STORAGE_COMMITMENT_INSTANCE
            )
        event_type, info = reports.get(timeout=20)
    finally:
        server.shutdown()
    report = Report(action_status=int(status.Status), event_type=event_type, info=info)
    assert (report.action_status, report.event_type) == (0x0000, SOME_FAILED)
    assert info.TransactionUID == action.TransactionUID
    assert (report.committed(), report.failed()) == ([ref(1)], [(*UNKNOWN, NO_SUCH_OBJECT)])
