"""C-CANCEL of a C-FIND and of a C-MOVE in progress (PS3.4 C.4.1.3.2, C.4.2.3.2).

A study of many small instances keeps the answers coming for a while after the cancel,
so the cancel lands in the middle of the operation.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import build_context

from rix.ingest import Outcome, Received, ingest
from tests.dicom.synthetic import uid
from tests.peers import dcmtk, scu
from tests.peers.server import RixServer

CANCEL, SUCCESS, PENDING = 0xFE00, 0x0000, 0xFF00
BULK = 600
BULK_STUDY = uid("bulk")


def bulk_instance(number: int) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = uid("bulk", str(number))
    ds.StudyInstanceUID = BULK_STUDY
    ds.SeriesInstanceUID = uid("bulk", "series")
    ds.PatientID = "BULK-001"
    ds.PatientName = "Zeta^Bulk"  # matches none of the name patterns of test_find
    ds.Modality = "OT"
    ds.InstanceNumber = number
    return ds


@pytest.fixture(scope="module")
def bulk_study(rix_server: RixServer) -> str:
    """Ingested in this process into the server's index and store, as its C-STORE handler
    would (about 2 s; 8 s over four associations): the tests are of the queries."""

    def one(number: int) -> Outcome:
        dataset = scu.encode(bulk_instance(number), ExplicitVRLittleEndian)
        received = Received(dataset=dataset, transfer_syntax=ExplicitVRLittleEndian)
        return ingest(archive, received).outcome

    with rix_server.archive() as archive, ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(one, range(1, BULK + 1)))  # four writers share commits
    assert outcomes == [Outcome.STORED] * BULK
    return BULK_STUDY


def test_four_associations_storing_at_once_are_each_answered_and_all_indexed(
    rix_server: RixServer,
) -> None:
    """The bulk study is ingested in process (for speed); this keeps concurrent C-STORE over
    several associations into the running server, whose commits they share, covered."""
    study = uid("concurrent")
    batches = []
    for k in range(4):
        batch = []
        for n in range(8):
            ds = bulk_instance(100 * k + n)
            ds.StudyInstanceUID = study
            ds.SeriesInstanceUID = uid("concurrent", "series")  # nothing shared with the bulk study
            ds.PatientID = "CONC-001"
            ds.SOPInstanceUID = uid("concurrent", str(k), str(n))
            batch.append(ds)
        batches.append(batch)
    with ThreadPoolExecutor(4) as pool:
        answers = pool.map(lambda batch: scu.store_datasets(rix_server.dicom_port, batch), batches)
        statuses = [status for batch in answers for status in batch]
    assert statuses == [SUCCESS] * 32
    result = scu.find(rix_server.dicom_port, every_instance(study))
    assert (result.status, len(result.matches)) == (SUCCESS, 32)


def every_instance(study_uid: str) -> Dataset:
    return scu.query("IMAGE", StudyInstanceUID=study_uid, SOPInstanceUID="", InstanceNumber="")


def test_cfind_of_the_bulk_study_lists_every_instance(
    rix_server: RixServer, bulk_study: str
) -> None:
    result = scu.find(rix_server.dicom_port, every_instance(bulk_study))
    assert (result.status, len(result.matches)) == (SUCCESS, BULK)


def test_cancel_stops_a_cfind_after_some_pending_responses(
    rix_server: RixServer, bulk_study: str
) -> None:
    model = scu.STUDY_ROOT_FIND
    with scu.association(rix_server.dicom_port, [build_context(model)]) as assoc:
        context_id = assoc.accepted_contexts[0].context_id
        statuses = []
        for status, _identifier in assoc.send_c_find(every_instance(bulk_study), model, msg_id=7):
            statuses.append(int(status.Status))
            if statuses == [PENDING]:
                assoc.send_c_cancel(7, context_id)
        pending = statuses.count(PENDING)
        assert statuses[-1] == CANCEL
        assert 1 <= pending < BULK
        assert statuses == [PENDING] * pending + [CANCEL]
        # the association is still usable after the cancel
        again = list(assoc.send_c_find(scu.query("STUDY", StudyInstanceUID=bulk_study), model))
        assert [int(s.Status) for s, _ in again] == [PENDING, SUCCESS]


def test_cancel_stops_a_cmove_and_counts_the_remaining_sub_operations(
    rix_server: RixServer, bulk_study: str
) -> None:
    model = scu.STUDY_ROOT_MOVE
    with scu.CaptureSCP("CANCELDEST") as destination:
        rix_server.add_ae(destination.ae_title, dcmtk.HOST, destination.port)
        with scu.association(rix_server.dicom_port, [build_context(model)]) as assoc:
            context_id = assoc.accepted_contexts[0].context_id
            query = scu.query("STUDY", StudyInstanceUID=bulk_study)
            responses = []
            for status, _identifier in assoc.send_c_move(query, destination.ae_title, model, 9):
                responses.append(status)
                if len(responses) == 1:
                    assoc.send_c_cancel(9, context_id)
        received = len(destination.received)
    final = responses[-1]
    assert [int(r.Status) for r in responses[:-1]] == [PENDING] * (len(responses) - 1)
    assert int(final.Status) == CANCEL
    done = int(final.NumberOfCompletedSuboperations)
    assert 1 <= done < BULK
    assert (int(final.NumberOfFailedSuboperations), int(final.NumberOfWarningSuboperations)) == (
        0,
        0,
    )
    assert int(final.NumberOfRemainingSuboperations) == BULK - done
    assert received == done
