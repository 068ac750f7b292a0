"""ADT over MLLP about who a patient is: A01 admits (an encounter, a relationship the
access policy reads), A03 and A08 correct the record, and A40 merges one record into
another, which QIDO and C-FIND then answer, with the stored bytes unchanged. The same
over the REST API (``/api/patients``)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Response

from tests.peers import browser, scu
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


def _metadata(workflow: Workflow, study_uid: str, **headers: str) -> Any:
    return workflow.http("a.clinician").get(
        f"/dicomweb/studies/{study_uid}/metadata", headers=headers
    )


def _shown(answer: Any) -> set[tuple[str, str]]:
    """(PatientID, PatientName) each instance's metadata shows."""
    return {
        (i["00100020"]["Value"][0], i["00100010"]["Value"][0]["Alphabetic"]) for i in answer.json()
    }


def test_an_a40_merge_rebuilds_metadata_already_built_and_changes_its_etag(
    workflow: Workflow,
) -> None:
    prior, surviving = unique("A"), unique("A")
    study_uid = study(workflow.port, "A_CT", prior)
    wait_for("the study", lambda: studies_seen(workflow, "a.clinician", PatientID=prior))
    before = _metadata(workflow, study_uid)  # built now, as a viewer opening it would
    assert {shown[0] for shown in _shown(before)} == {prior}
    old_tag = before.headers["ETag"]

    merge = adt(
        "A40",
        patient=hospital_number(surviving, "A"),
        name="Merged^Mona",
        merged=hospital_number(prior, "A"),
    )
    assert workflow.send(merge).code == "AA"

    after = _metadata(workflow, study_uid)
    assert _shown(after) == {(surviving, "Merged^Mona")}
    assert after.headers["ETag"] != old_tag
    assert "immutable" not in after.headers["Cache-Control"]
    # a cached client revalidating with the old validator gets the new document
    revalidated = _metadata(workflow, study_uid, **{"If-None-Match": old_tag})
    assert revalidated.status_code == 200 and _shown(revalidated) == _shown(after)
    current = _metadata(workflow, study_uid, **{"If-None-Match": after.headers["ETag"]})
    assert current.status_code == 304
    # a later correction of the surviving record reaches the merged images' metadata too
    renamed = adt("A08", patient=hospital_number(surviving, "A"), name="Renamed^Mona")
    assert workflow.send(renamed).code == "AA"
    assert _shown(_metadata(workflow, study_uid)) == {(surviving, "Renamed^Mona")}


def _viewer_patient_id(page: Page, origin: str, study_uid: str, wanted: str) -> None:
    """Open the study in OHIF, draw it, and wait for the header's patient panel (OHIF
    reads it from the study's WADO-RS metadata) to show ``wanted`` as the patient ID."""
    page.goto(f"{origin}/viewer/viewer?StudyInstanceUIDs={study_uid}")
    browser.wait_for_image(page)
    page.get_by_text("Patient", exact=True).click()  # expands to name, ID, sex, birth date
    page.get_by_text(wanted, exact=True).wait_for(timeout=15_000)


def test_the_viewer_shows_the_surviving_patient_id_after_an_a40_merge(
    workflow: Workflow, chromium: Browser, backend: str
) -> None:
    if backend != "sqlite":
        pytest.skip("the browser once; the metadata it reads is checked on both backends above")
    prior, surviving = unique("A"), unique("A")
    study_uid = study(workflow.port, "A_CT", prior)
    wait_for("the study", lambda: studies_seen(workflow, "a.clinician", PatientID=prior))
    origin = f"http://127.0.0.1:{workflow.server.http_port}"
    staff = workflow.staff["a.clinician"]
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    try:
        signed_in = context.request.post(
            origin + "/login",
            form={"username": staff.username, "password": staff.password, "next": "/"},
            max_redirects=0,
        )
        assert signed_in.status == 303
        page = context.new_page()
        metadata: list[int] = []

        def seen(response: Response) -> None:
            if response.url.endswith("/metadata"):
                metadata.append(response.status)

        page.on("response", seen)
        _viewer_patient_id(page, origin, study_uid, prior)
        merge = adt(
            "A40",
            patient=hospital_number(surviving, "A"),
            merged=hospital_number(prior, "A"),
        )
        assert workflow.send(merge).code == "AA"
        metadata.clear()
        _viewer_patient_id(page, origin, study_uid, surviving)  # same browser, its cache warm
        assert metadata and 304 not in metadata
    finally:
        context.close()


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
    old_tag = _metadata(workflow, study_uid).headers["ETag"]  # built before the merge

    assert workflow.http("a.clinician").post("/api/patients/merge", json=body).status_code == 403
    assert workflow.http("b.clinician").post("/api/patients/merge", json=body).status_code == 403
    merged = workflow.http("a.admin").post("/api/patients/merge", json=body)

    assert merged.status_code == 200, merged.text
    assert merged.json()["studies_moved"] == 1
    assert study_uid in studies_seen(workflow, "a.clinician", PatientID=surviving)
    assert studies_seen(workflow, "a.clinician", PatientID=prior) == []
    merged_metadata = _metadata(workflow, study_uid, **{"If-None-Match": old_tag})
    assert merged_metadata.status_code == 200
    assert {shown[0] for shown in _shown(merged_metadata)} == {surviving}
    update = {"patient": f"A-MRN/{surviving}", "name": "Api^Amy", "sex": "F"}
    answer = workflow.http("a.admin").post("/api/patients/update", json=update)
    assert (answer.status_code, answer.json()["name"]) == (200, "Api^Amy")
