"""The Modality Worklist SCP as DCMTK's ``findscu -W`` sees it: a trust's modality gets
that trust's scheduled orders, matched on the scheduled step's modality, station and
start date (single or range), patient ID and name (wildcards) and accession number,
each with the trust's own patient identity and the Study Instance UID made for the
order; an unregistered AE gets nothing."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from tests.peers import dcmtk
from tests.workflow.ordering import Workflow, unique

SPS = "ScheduledProcedureStepSequence[0]"
RETURN_KEYS = {
    "PatientName": "",
    "PatientID": "",
    "IssuerOfPatientID": "",
    "AccessionNumber": "",
    "StudyInstanceUID": "",
    "RequestedProcedureID": "",
    "RequestedProcedureDescription": "",
    f"{SPS}.Modality": "",
    f"{SPS}.ScheduledStationAETitle": "",
    f"{SPS}.ScheduledProcedureStepStartDate": "",
    f"{SPS}.ScheduledProcedureStepStartTime": "",
    f"{SPS}.ScheduledProcedureStepDescription": "",
    f"{SPS}.ScheduledProcedureStepID": "",
}


def findscu_w(workflow: Workflow, folder: Path, calling: str, **keys: str) -> list[Dataset]:
    """``findscu -W`` as ``calling``; the worklist items answered (``-X`` files)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("rsp*.dcm"):
        old.unlink()
    query = {**RETURN_KEYS, **{k.replace("__", "."): v for k, v in keys.items()}}
    result = dcmtk.run(
        "findscu",
        "-W",
        "-X",
        "-od",
        str(folder),
        "-aet",
        calling,
        "-aec",
        "RIX",
        dcmtk.HOST,
        str(workflow.port),
        *dcmtk.keys({k.replace("__", "."): v for k, v in query.items()}),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [pydicom.dcmread(p) for p in sorted(folder.glob("rsp*.dcm"))]


@pytest.fixture(scope="module")
def scheduled(workflow: Workflow) -> dict[str, dict[str, object]]:
    """A's CT on 1 March and MR on 8 March 2030, B's CT on 1 March; one patient at A."""
    patient_a, patient_b = unique("WL"), unique("WL")
    out = {}
    for key, user, trust, patient_id, modality, station, when in [
        ("a_ct", "a.clinician", "A", patient_a, "CT", "A_CT", "2030-03-01T09:30:00"),
        ("a_mr", "a.clinician", "A", patient_a, "MR", "A_MR", "2030-03-08T14:00:00"),
        ("b_ct", "b.clinician", "B", patient_b, "CT", "B_CT", "2030-03-01T10:00:00"),
    ]:
        body = {
            "trust": trust,
            "patient": {"patient_id": patient_id, "name": "Worklist^Wendy", "sex": "F"},
            "modality": modality,
            "station_ae": station,
            "procedure_text": f"{modality} examination",
            "scheduled_at": when,
        }
        answer = workflow.http(user).post("/api/orders", json=body)
        assert answer.status_code == 201, answer.text
        out[key] = answer.json()
    return out


def accessions(items: list[Dataset]) -> list[str]:
    return sorted(str(i.AccessionNumber) for i in items)


def test_a_modality_gets_its_trusts_scheduled_step_with_the_orders_identity(
    workflow: Workflow, scheduled: dict[str, dict[str, object]], tmp_path: Path
) -> None:
    order = scheduled["a_ct"]
    [item] = findscu_w(
        workflow,
        tmp_path,
        "A_CT",
        AccessionNumber=str(order["accession_number"]),
    )

    patient_id = str(order["patient"]).split("/", 1)[1]
    assert (item.PatientID, item.IssuerOfPatientID) == (patient_id, "A-MRN")
    assert str(item.PatientName) == "Worklist^Wendy"
    assert item.StudyInstanceUID == order["requested_study_uid"]
    assert item.RequestedProcedureID == order["accession_number"]
    assert item.RequestedProcedureDescription == "CT examination"
    [step] = item.ScheduledProcedureStepSequence
    assert (step.Modality, step.ScheduledStationAETitle) == ("CT", "A_CT")
    assert (step.ScheduledProcedureStepStartDate, step.ScheduledProcedureStepStartTime) == (
        "20300301",
        "093000",
    )
    assert step.ScheduledProcedureStepID == str(order["id"])
    assert "ReferringPhysicianName" not in item  # only the keys asked are answered


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        pytest.param({f"{SPS}__Modality": "CT"}, ["a_ct"], id="modality"),
        pytest.param({f"{SPS}__ScheduledStationAETitle": "A_MR"}, ["a_mr"], id="station"),
        pytest.param(
            {f"{SPS}__ScheduledProcedureStepStartDate": "20300301"}, ["a_ct"], id="one-day"
        ),
        pytest.param(
            {f"{SPS}__ScheduledProcedureStepStartDate": "20300228-20300309"},
            ["a_ct", "a_mr"],
            id="range",
        ),
        pytest.param(
            {f"{SPS}__ScheduledProcedureStepStartDate": "20300302-"}, ["a_mr"], id="open-range"
        ),
        pytest.param(
            {
                f"{SPS}__ScheduledProcedureStepStartDate": "20300301",
                f"{SPS}__ScheduledProcedureStepStartTime": "1000-1200",
            },
            [],
            id="day-and-time",
        ),
    ],
)
def test_the_scheduled_step_keys_match(
    workflow: Workflow,
    scheduled: dict[str, dict[str, object]],
    tmp_path: Path,
    keys: dict[str, str],
    expected: list[str],
) -> None:
    """Within the patient's orders (the archive holds other tests' orders too)."""
    patient_id = str(scheduled["a_ct"]["patient"]).split("/", 1)[1]
    found = findscu_w(workflow, tmp_path, "A_CT", PatientID=patient_id, **keys)
    assert accessions(found) == sorted(str(scheduled[k]["accession_number"]) for k in expected)


def test_patient_names_match_with_wildcards_and_each_trust_sees_its_own(
    workflow: Workflow, scheduled: dict[str, dict[str, object]], tmp_path: Path
) -> None:
    ours = {str(scheduled[k]["accession_number"]) for k in ("a_ct", "a_mr")}
    theirs = str(scheduled["b_ct"]["accession_number"])

    found_by_a = accessions(findscu_w(workflow, tmp_path, "A_CT", PatientName="work*^WEN*"))
    found_by_b = accessions(findscu_w(workflow, tmp_path, "B_CT", PatientName="work*"))

    assert ours <= set(found_by_a) and theirs not in found_by_a
    assert theirs in found_by_b and not ours & set(found_by_b)
    assert findscu_w(workflow, tmp_path, "NOBODY_CT", PatientName="*") == []


def test_a_cancelled_order_leaves_the_worklist(workflow: Workflow, tmp_path: Path) -> None:
    body = {"trust": "A", "patient": {"patient_id": unique("WL")}, "modality": "US"}
    order = workflow.http("a.clinician").post("/api/orders", json=body).json()
    accession = str(order["accession_number"])
    assert len(findscu_w(workflow, tmp_path, "A_CT", AccessionNumber=accession)) == 1

    workflow.http("a.clinician").post(f"/api/orders/{order['id']}/cancel")

    assert findscu_w(workflow, tmp_path, "A_CT", AccessionNumber=accession) == []
