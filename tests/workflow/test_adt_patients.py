"""ADT over MLLP about who a patient is: A01 admits (an encounter, a relationship the
access policy reads), A03 and A08 correct the record, and A40 merges one record into
another, which QIDO and C-FIND then answer, with the stored bytes unchanged. The same
over the REST API (``/api/patients``)."""

from __future__ import annotations

from typing import Any

from tests.peers import scu
from tests.region.region import Caller, find
from tests.workflow.ordering import (
    Workflow,
    adt,
    hospital_number,
    studies_seen,
    study,
    unique,
    wait_for,
)


def _qido(workflow: Workflow, username: str, **params: str) -> list[dict[str, Any]]:
    answer = workflow.http(username).get("/dicomweb/studies", params=params)
    assert answer.status_code in (200, 204), answer.text
    return [] if answer.status_code == 204 else list(answer.json())


def _patient_ids(found: list[dict[str, Any]]) -> list[str]:
    return [str(s["00100020"]["Value"][0]) for s in found]


def test_an_a01_admission_opens_a_partner_trusts_images_of_the_patient(
    workflow: Workflow,
) -> None:
    nhs_number = "9434765935"
    at_a = study(workflow.port, "A_CT", unique("A"), nhs_number=nhs_number)
    wait_for("A's study", lambda: studies_seen(workflow, "a.clinician", StudyInstanceUID=at_a))
    assert studies_seen(workflow, "b.clinician", StudyInstanceUID=at_a) == []

    reply = workflow.send(
        adt("A01", facility="B", patient=hospital_number(unique("B"), "B", nhs_number), visit="V1")
    )

    assert reply.code == "AA", reply
    assert studies_seen(workflow, "b.clinician", StudyInstanceUID=at_a) == [at_a]


def test_an_a03_discharge_ends_what_the_admission_opened(workflow: Workflow) -> None:
    nhs_number = "9434766036"
    at_a = study(workflow.port, "A_CT", unique("A"), nhs_number=nhs_number)
    wait_for("A's study", lambda: studies_seen(workflow, "a.clinician", StudyInstanceUID=at_a))
    at_b = hospital_number(unique("B"), "B", nhs_number)
    assert workflow.send(adt("A01", facility="B", patient=at_b, visit="V9")).code == "AA"
    assert studies_seen(workflow, "b.clinician", StudyInstanceUID=at_a) == [at_a]

    left = adt("A03", facility="B", patient=at_b, visit="V9", discharged="20250101093000")
    reply = workflow.send(left)

    assert reply.code == "AA" and "1 encounters ended" in reply.text, reply
    assert studies_seen(workflow, "b.clinician", StudyInstanceUID=at_a) == []


def test_an_a08_or_a03_corrects_the_record_that_queries_answer(workflow: Workflow) -> None:
    patient_id = unique("A")
    study_uid = study(workflow.port, "A_CT", patient_id)
    wait_for("the study", lambda: studies_seen(workflow, "a.clinician", StudyInstanceUID=study_uid))

    renamed = adt("A08", patient=hospital_number(patient_id, "A"), name="Renamed^Rachel")
    assert workflow.send(renamed).code == "AA"
    [found] = _qido(workflow, "a.clinician", StudyInstanceUID=study_uid)
    assert found["00100010"]["Value"][0]["Alphabetic"] == "Renamed^Rachel"

    discharged = adt("A03", patient=hospital_number(patient_id, "A"), birth_date="19790202")
    assert workflow.send(discharged).code == "AA"
    [found] = _qido(workflow, "a.clinician", StudyInstanceUID=study_uid)
    assert found["00100030"]["Value"] == ["19790202"]


def test_an_a40_merge_is_what_qido_and_c_find_answer(workflow: Workflow) -> None:
    prior, surviving = unique("A"), unique("A")
    study_uid = study(workflow.port, "A_CT", prior)
    wait_for("the study", lambda: studies_seen(workflow, "a.clinician", PatientID=prior))

    merge = adt(
        "A40",
        patient=hospital_number(surviving, "A"),
        name="Merged^Mary",
        merged=hospital_number(prior, "A"),
    )
    reply = workflow.send(merge)

    assert reply.code == "AA", reply
    assert "1 studies" in reply.text
    assert _patient_ids(_qido(workflow, "a.clinician", PatientID=surviving)) == [surviving]
    assert studies_seen(workflow, "a.clinician", PatientID=surviving) == [study_uid]
    identifier = scu.query("STUDY", StudyInstanceUID=study_uid, PatientID="", PatientName="")
    [match] = find(workflow.port, Caller(ae_title="A_CT"), identifier)
    assert (match.PatientID, str(match.PatientName)) == (surviving, "Merged^Mary")
    # the instances leave rix under the surviving record, the prior ID among the others
    metadata = workflow.http("a.clinician").get(f"/dicomweb/studies/{study_uid}/metadata")
    first = metadata.json()[0]
    assert first["00100020"]["Value"] == [surviving]
    others = [i["00100020"]["Value"][0] for i in first["00101002"]["Value"]]
    assert prior in others


def test_a_merge_of_an_unknown_record_is_refused_and_changes_nothing(workflow: Workflow) -> None:
    surviving = unique("A")
    merge = adt(
        "A40",
        patient=hospital_number(surviving, "A"),
        merged=hospital_number("NOBODY-" + unique("X"), "A"),
    )
    reply = workflow.send(merge)

    assert reply.code == "AR" and "no patient record" in reply.text, reply
    assert reply.err[3].startswith("204^")
    # the surviving record was not made either: the whole message was rolled back
    check = adt("A08", patient=hospital_number(surviving, "A"), name="Check^Only")
    assert workflow.send(check).text == f"patient A-MRN/{surviving} updated"


def test_an_a08_changing_a_linked_nhs_number_is_refused(workflow: Workflow) -> None:
    patient_id = unique("A")
    first = adt("A08", patient=hospital_number(patient_id, "A", "9434765943"))
    assert workflow.send(first).code == "AA"
    other = adt("A08", patient=hospital_number(patient_id, "A", "9434765951"))
    reply = workflow.send(other)
    assert reply.code == "AR" and "MPI review" in reply.text, reply


def test_trust_administrators_correct_and_merge_records_over_the_api(workflow: Workflow) -> None:
    prior, surviving = unique("A"), unique("A")
    study_uid = study(workflow.port, "A_CT", prior)
    study(workflow.port, "A_CT", surviving)
    wait_for("the study", lambda: studies_seen(workflow, "a.clinician", PatientID=prior))
    body = {"prior": f"A-MRN/{prior}", "surviving": f"A-MRN/{surviving}"}

    assert workflow.http("a.clinician").post("/api/patients/merge", json=body).status_code == 403
    assert workflow.http("b.clinician").post("/api/patients/merge", json=body).status_code == 403
    merged = workflow.http("a.admin").post("/api/patients/merge", json=body)

    assert merged.status_code == 200, merged.text
    assert merged.json()["studies_moved"] == 1
    assert study_uid in studies_seen(workflow, "a.clinician", PatientID=surviving)
    assert studies_seen(workflow, "a.clinician", PatientID=prior) == []
    update = {"patient": f"A-MRN/{surviving}", "name": "Api^Amy", "sex": "F"}
    answer = workflow.http("a.admin").post("/api/patients/update", json=update)
    assert (answer.status_code, answer.json()["name"]) == (200, "Api^Amy")
