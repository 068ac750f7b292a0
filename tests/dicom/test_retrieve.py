"""C-MOVE and C-GET SCP (PS3.4 C.4.2, C.4.3): sub-operations and their counts.

The move destination is a pynetdicom storage SCP registered with ``rix ae add``; it can
answer chosen instances with a failure or a warning so each count is exercised. It accepts
storage only, not Verification, and counts every connection made to it: a move rix
refuses must be answered without contacting the destination at all.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydicom.dataset import Dataset

from tests.dicom import synthetic
from tests.dicom.synthetic import DOE_JOHN, S1, S2, S3, Study
from tests.peers import dcmtk, scu
from tests.peers.objects import instance_key
from tests.peers.server import RixServer

pytestmark = pytest.mark.usefixtures("synthetic_studies")
SUCCESS, PENDING, WARNING_SUBOPS_FAILED, UNKNOWN_DESTINATION = 0x0000, 0xFF00, 0xB000, 0xA801
NOT_AUTHORIZED = 0x0124  # PS3.7 C.5 Refused: Not Authorized
STRANGER = "TESTWS"  # a calling AE of trust TEST: the synthetic studies are of no trust
CT, SR = synthetic.SOP_CLASS["CT"], synthetic.SOP_CLASS["SR"]
IMPLICIT = "1.2.840.10008.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"


@pytest.fixture(scope="module")
def destination(rix_server: RixServer) -> Iterator[scu.CaptureSCP]:
    with scu.CaptureSCP("MOVEDEST") as scp:
        rix_server.add_ae(scp.ae_title, dcmtk.HOST, scp.port)
        yield scp


@pytest.fixture
def capture(destination: scu.CaptureSCP) -> Iterator[scu.CaptureSCP]:
    destination.received.clear()
    destination.answers.clear()
    destination.connections = 0
    yield destination
    destination.answers.clear()


@pytest.fixture(scope="module")
def stranger(rix_server: RixServer) -> str:
    """A registered AE of trust TEST, which may not see studies sent by no trust's AE."""
    assert rix_server.token  # made with trust TEST
    rix_server.add_ae(STRANGER, dcmtk.HOST, 104, trust="TEST")
    return STRANGER


def uids_of(study: Study) -> list[str]:
    return sorted(str(ds.SOPInstanceUID) for ds in synthetic.instances(study))


def study_query(study: Study) -> Dataset:
    return scu.query("STUDY", StudyInstanceUID=study.uid)


def test_cmove_counts_completed_sub_operations(
    rix_server: RixServer, capture: scu.CaptureSCP
) -> None:
    result = scu.move(rix_server.dicom_port, study_query(S1), capture.ae_title)
    assert (result.status, result.completed, result.failed, result.warning) == (SUCCESS, 4, 0, 0)
    assert result.pending >= 1
    assert sorted(c.sop_instance_uid for c in capture.received) == uids_of(S1)
    assert capture.connections == 1  # the counter the refusal tests rely on does count


def test_cmove_counts_failed_and_warning_sub_operations(
    rix_server: RixServer, capture: scu.CaptureSCP
) -> None:
    failed, warned = S1.instance_uid(0, 2), S1.instance_uid(0, 3)
    capture.answers.update({failed: 0xA700, warned: 0xB000})
    result = scu.move(rix_server.dicom_port, study_query(S1), capture.ae_title)
    assert (result.status, result.completed, result.failed, result.warning) == (
        WARNING_SUBOPS_FAILED,
        2,
        1,
        1,
    )
    assert result.failed_uids == [failed]  # PS3.4 C.4.2.1.4.2


def test_cmove_to_an_unknown_destination_answers_a801(
    rix_server: RixServer, capture: scu.CaptureSCP
) -> None:
    result = scu.move(rix_server.dicom_port, study_query(S1), "NOWHERE")
    assert (result.status, result.completed, result.pending) == (UNKNOWN_DESTINATION, 0, 0)
    assert capture.received == []


def test_cmove_refused_answers_0124_without_contacting_the_destination(
    rix_server: RixServer, capture: scu.CaptureSCP, stranger: str
) -> None:
    result = scu.move(rix_server.dicom_port, study_query(S1), capture.ae_title, calling=stranger)
    assert (result.status, result.completed) == (NOT_AUTHORIZED, 0), result.error_comment
    assert "not authorised" in result.error_comment
    assert (capture.connections, capture.received) == (0, [])


def test_cmove_by_movescu_refused_is_not_authorized_and_opens_nothing(
    rix_server: RixServer, capture: scu.CaptureSCP, stranger: str
) -> None:
    result = dcmtk.movescu(
        rix_server.dicom_port,
        {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": S1.uid},
        capture.ae_title,
        calling=stranger,
    )
    final = [line for line in result.stderr.splitlines() if "Final Move Response" in line]
    assert final and "0x124" in final[0], result.stderr[-2000:]  # DCMTK has no name for it
    assert (capture.connections, capture.received) == (0, [])


def test_cmove_by_movescu_to_an_unknown_destination_fails(rix_server: RixServer) -> None:
    result = dcmtk.movescu(
        rix_server.dicom_port,
        {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": S1.uid},
        "NOWHERE",
    )
    assert "Refused: MoveDestinationUnknown" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("level", "keys"),
    [
        ("STUDY", {"PatientID": DOE_JOHN.id}),
        ("SERIES", {"StudyInstanceUID": S1.uid}),
        ("IMAGE", {"SeriesInstanceUID": S1.series_uid(0)}),
    ],
    ids=["study", "series", "image"],
)
def test_cmove_without_the_levels_unique_key_fails(
    rix_server: RixServer, capture: scu.CaptureSCP, level: str, keys: dict[str, str]
) -> None:
    result = scu.move(rix_server.dicom_port, scu.query(level, **keys), capture.ae_title)
    assert 0xA000 <= result.status <= 0xCFFF, hex(result.status)
    assert (result.completed, capture.received, capture.connections) == (0, [], 0)


def test_cmove_study_root_has_no_patient_level(
    rix_server: RixServer, capture: scu.CaptureSCP
) -> None:
    query = scu.query("PATIENT", PatientID=DOE_JOHN.id)
    result = scu.move(rix_server.dicom_port, query, capture.ae_title)
    assert 0xA000 <= result.status <= 0xCFFF, hex(result.status)
    assert (result.completed, capture.received) == (0, [])


def test_cmove_patient_root_moves_every_instance_of_a_patient(
    rix_server: RixServer, capture: scu.CaptureSCP
) -> None:
    result = scu.move(
        rix_server.dicom_port,
        scu.query("PATIENT", PatientID=DOE_JOHN.id),
        capture.ae_title,
        model=scu.PATIENT_ROOT_MOVE,
    )
    assert (result.status, result.completed, result.failed) == (SUCCESS, 6, 0)
    assert sorted(c.sop_instance_uid for c in capture.received) == sorted(uids_of(S1) + uids_of(S2))


def test_cmove_image_level_moves_a_list_of_instances(
    rix_server: RixServer, capture: scu.CaptureSCP
) -> None:
    wanted = [S3.instance_uid(0, 2), S1.instance_uid(1, 1)]
    result = scu.move(
        rix_server.dicom_port, scu.query("IMAGE", SOPInstanceUID=wanted), capture.ae_title
    )
    assert (result.status, result.completed) == (SUCCESS, 2)
    assert sorted(c.sop_instance_uid for c in capture.received) == sorted(wanted)


def test_cget_counts_completed_sub_operations(rix_server: RixServer) -> None:
    result = scu.get(rix_server.dicom_port, study_query(S1), [(CT, EXPLICIT), (SR, EXPLICIT)])
    assert (result.status, result.completed, result.failed, result.warning) == (SUCCESS, 4, 0, 0)
    assert sorted(c.sop_instance_uid for c in result.stored) == uids_of(S1)


def test_cget_counts_failed_and_warning_sub_operations(rix_server: RixServer) -> None:
    failed, warned = S1.instance_uid(0, 1), S1.instance_uid(1, 1)
    result = scu.get(
        rix_server.dicom_port,
        study_query(S1),
        [(CT, EXPLICIT), (SR, EXPLICIT)],
        answers={failed: 0xA700, warned: 0xB007},
    )
    assert (result.status, result.completed, result.failed, result.warning) == (
        WARNING_SUBOPS_FAILED,
        2,
        1,
        1,
    )
    assert result.failed_uids == [failed]


def test_cget_counts_a_failed_sub_operation_without_a_storage_context(
    rix_server: RixServer,
) -> None:
    """The requester accepted no context for the SR: that sub-operation fails."""
    result = scu.get(rix_server.dicom_port, study_query(S1), [(CT, EXPLICIT)])
    assert (result.status, result.completed, result.failed) == (WARNING_SUBOPS_FAILED, 3, 1)
    assert result.failed_uids == [S1.instance_uid(1, 1)]


def test_cget_converts_to_an_uncompressed_syntax_the_requester_accepted(
    rix_server: RixServer,
) -> None:
    result = scu.get(rix_server.dicom_port, study_query(S3), [(CT, IMPLICIT)])
    assert (result.status, result.completed) == (SUCCESS, 2)
    assert {c.transfer_syntax for c in result.stored} == {IMPLICIT}


@pytest.mark.parametrize(
    ("level", "keys"),
    [("STUDY", {"PatientID": DOE_JOHN.id}), ("IMAGE", {"StudyInstanceUID": S1.uid})],
    ids=["study", "image"],
)
def test_cget_without_the_levels_unique_key_fails(
    rix_server: RixServer, level: str, keys: dict[str, str]
) -> None:
    result = scu.get(rix_server.dicom_port, scu.query(level, **keys), [(CT, EXPLICIT)])
    assert 0xA000 <= result.status <= 0xCFFF, hex(result.status)
    assert (result.completed, result.stored) == (0, [])


GONE = Study(
    key="GONE",
    patient=synthetic.AUX,
    date="20240501",
    time="100000",
    accession="ACC-GONE",
    description="CT GONE",
    series=(("CT", 2),),
)


def test_cmove_counts_a_failure_for_an_instance_whose_file_is_gone(
    rix_server: RixServer, capture: scu.CaptureSCP
) -> None:
    assert scu.store_datasets(rix_server.dicom_port, synthetic.instances(GONE)) == [0, 0]
    lost = GONE.instance_uid(0, 1)
    (rix_server.data / "objects" / instance_key(GONE.uid, GONE.series_uid(0), lost)).unlink()
    result = scu.move(rix_server.dicom_port, study_query(GONE), capture.ae_title)
    assert (result.status, result.completed, result.failed) == (WARNING_SUBOPS_FAILED, 1, 1)
    assert result.failed_uids == [lost]
    assert [c.sop_instance_uid for c in capture.received] == [GONE.instance_uid(0, 2)]
