"""MPPS with pynetdicom as the modality: N-CREATE IN PROGRESS starts the order, N-SET
COMPLETED or DISCONTINUED ends it, and what cannot be done is answered with its DIMSE
status (PS3.4 F.7.2): 0106 invalid value, 0111 duplicate, 0112 unknown step, 0110 with
Error ID A710 for a finished step, 0124 for an AE of no trust."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import build_context
from pynetdicom.association import Association

from tests.peers import scu
from tests.workflow.ordering import Workflow, unique

MPPS = "1.2.840.10008.3.1.2.3.3"


@contextmanager
def modality(workflow: Workflow, title: str = "A_CT") -> Iterator[Association]:
    with scu.association(workflow.port, [build_context(MPPS)], calling=title) as assoc:
        yield assoc


def ordered(workflow: Workflow) -> dict[str, Any]:
    body = {"trust": "A", "patient": {"patient_id": unique("MP")}, "modality": "CT"}
    answer = workflow.http("a.clinician").post("/api/orders", json=body)
    assert answer.status_code == 201, answer.text
    found: dict[str, Any] = answer.json()
    return found


def status_of(workflow: Workflow, order: dict[str, Any]) -> str:
    return str(workflow.http("a.clinician").get(f"/api/orders/{order['id']}").json()["status"])


def in_progress(order: dict[str, Any]) -> Dataset:
    """An N-CREATE attribute list (PS3.4 F.7.2.1) for the order's scheduled step."""
    step = Dataset()
    step.AccessionNumber = order["accession_number"]
    step.StudyInstanceUID = order["requested_study_uid"]
    step.RequestedProcedureID = order["requested_procedure_id"]
    step.ScheduledProcedureStepID = str(order["id"])
    ds = Dataset()
    ds.ScheduledStepAttributesSequence = [step]
    ds.PatientID = order["patient"].split("/", 1)[1]
    ds.PerformedProcedureStepID = "PPS1"
    ds.PerformedStationAETitle = "A_CT"
    ds.PerformedProcedureStepStartDate = "20261201"
    ds.PerformedProcedureStepStartTime = "093000"
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.Modality = "CT"
    return ds


def finished(status: str) -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status
    ds.PerformedProcedureStepEndDate = "20261201"
    ds.PerformedProcedureStepEndTime = "094500"
    return ds


def create(assoc: Association, ds: Dataset, uid: str) -> Dataset:
    status, _attributes = assoc.send_n_create(ds, MPPS, uid)
    assert "Status" in status, "no N-CREATE response"
    return status


def set_(assoc: Association, ds: Dataset, uid: str) -> Dataset:
    status, _attributes = assoc.send_n_set(ds, MPPS, uid)
    assert "Status" in status, "no N-SET response"
    return status


def test_a_step_in_progress_then_completed_moves_its_order(workflow: Workflow) -> None:
    order, uid = ordered(workflow), str(generate_uid())
    with modality(workflow) as assoc:
        assert create(assoc, in_progress(order), uid).Status == 0x0000
        assert status_of(workflow, order) == "in-progress"
        assert set_(assoc, finished("COMPLETED"), uid).Status == 0x0000
    assert status_of(workflow, order) == "completed"


def test_a_discontinued_step_discontinues_its_order(workflow: Workflow) -> None:
    order, uid = ordered(workflow), str(generate_uid())
    with modality(workflow) as assoc:
        create(assoc, in_progress(order), uid)
        assert set_(assoc, finished("DISCONTINUED"), uid).Status == 0x0000
    assert status_of(workflow, order) == "discontinued"


def test_a_finished_step_may_no_longer_be_updated(workflow: Workflow) -> None:
    order, uid = ordered(workflow), str(generate_uid())
    with modality(workflow) as assoc:
        create(assoc, in_progress(order), uid)
        set_(assoc, finished("COMPLETED"), uid)
        again = set_(assoc, finished("DISCONTINUED"), uid)
    assert (again.Status, again.ErrorID) == (0x0110, 0xA710)
    assert "may no longer be updated" in again.ErrorComment
    assert status_of(workflow, order) == "completed"


def test_bad_steps_get_their_statuses_and_change_nothing(workflow: Workflow) -> None:
    order, uid = ordered(workflow), str(generate_uid())
    completed = in_progress(order)
    completed.PerformedProcedureStepStatus = "COMPLETED"
    with modality(workflow) as assoc:
        assert create(assoc, completed, uid).Status == 0x0106
        assert status_of(workflow, order) == "scheduled"
        assert set_(assoc, finished("COMPLETED"), str(generate_uid())).Status == 0x0112
        assert create(assoc, in_progress(order), uid).Status == 0x0000
        assert create(assoc, in_progress(order), uid).Status == 0x0111
        assert set_(assoc, finished("PAUSED"), uid).Status == 0x0106
    assert status_of(workflow, order) == "in-progress"


def test_steps_come_only_from_a_trusts_own_modalities(workflow: Workflow) -> None:
    order, uid = ordered(workflow), str(generate_uid())
    with modality(workflow, "NOBODY_CT") as assoc:
        assert create(assoc, in_progress(order), uid).Status == 0x0124
    with modality(workflow, "A_CT") as assoc:
        assert create(assoc, in_progress(order), uid).Status == 0x0000
    with modality(workflow, "B_CT") as assoc:  # B's modality does not know A's step
        assert set_(assoc, finished("COMPLETED"), uid).Status == 0x0112
    assert status_of(workflow, order) == "in-progress"
