"""Orders over the REST API: placed by a trust's clinical staff, listed with filters,
changed and cancelled; a study arriving with the order's accession number is matched to
it, one without is listed for reconciliation and matched by hand; and an order is the
relationship that lets the trust's staff see the patient's images at a partner trust."""

from __future__ import annotations

from typing import Any

import httpx

from tests.workflow.ordering import (
    Workflow,
    studies_seen,
    study,
    unique,
    wait_for,
)

NHS_NUMBERS = iter(["9434765870", "9434765889", "9434765897", "9434765900"])


def place(client: httpx.Client, trust: str, patient_id: str, **fields: Any) -> httpx.Response:
    patient = {"patient_id": patient_id, "name": "Rest^Rita", "birth_date": "19800101"}
    patient.update(fields.pop("patient", {}))
    body = {"trust": trust, "patient": patient, "modality": "CT", **fields}
    return client.post("/api/orders", json=body)


def placed(client: httpx.Client, trust: str, patient_id: str, **fields: Any) -> dict[str, Any]:
    answer = place(client, trust, patient_id, **fields)
    assert answer.status_code == 201, answer.text
    found: dict[str, Any] = answer.json()
    return found


def test_clinical_staff_place_their_own_trusts_orders_only(workflow: Workflow) -> None:
    patient_id = unique("A")
    order = placed(
        workflow.http("a.clinician"),
        "A",
        patient_id,
        priority="emergency",
        scheduled_at="2026-12-24T10:00:00",
        body_part="chest",
    )

    assert order["patient"] == f"A-MRN/{patient_id}"
    assert (order["status"], order["priority"], order["subspecialty"]) == (
        "scheduled",
        "emergency",
        "chest",
    )
    assert order["accession_number"].startswith("RIX")
    assert place(workflow.http("b.clinician"), "A", unique("A")).status_code == 403
    assert place(workflow.region.admin, "A", unique("A")).status_code == 403
    assert workflow.http("b.clinician").get(f"/api/orders/{order['id']}").status_code == 404
    assert workflow.http("a.admin").get(f"/api/orders/{order['id']}").json() == order


def test_orders_are_listed_by_status_modality_date_and_patient(workflow: Workflow) -> None:
    client, patient_id = workflow.http("a.clinician"), unique("A")
    christmas = placed(client, "A", patient_id, scheduled_at="2027-12-25T09:00:00")
    new_year = placed(client, "A", patient_id, modality="MR", scheduled_at="2028-01-01T09:00:00")
    record = f"A-MRN/{patient_id}"

    def ids(**params: str) -> list[int]:
        return sorted(o["id"] for o in workflow.orders_of("a.clinician", patient=record, **params))

    assert ids() == sorted([christmas["id"], new_year["id"]])
    assert ids(modality="MR") == [new_year["id"]]
    assert ids(since="2027-12-24T00:00:00", until="2027-12-26T00:00:00") == [christmas["id"]]
    assert ids(status="cancelled") == []
    assert workflow.orders_of("b.clinician", patient=record) == []
    assert workflow.http("b.clinician").get("/api/orders", params={"trust": "A"}).status_code == 403


def test_an_open_order_changes_and_cancels_a_started_one_discontinues(workflow: Workflow) -> None:
    client = workflow.http("a.clinician")
    order = placed(client, "A", unique("A"))

    changed = client.patch(
        f"/api/orders/{order['id']}", json={"modality": "mr", "station_ae": "A_MR"}
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["modality"], changed.json()["station_ae"]) == ("MR", "A_MR")
    cancelled = client.post(f"/api/orders/{order['id']}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    assert client.post(f"/api/orders/{order['id']}/cancel").json()["status"] == "cancelled"
    assert client.patch(f"/api/orders/{order['id']}", json={"reason": "x"}).status_code == 409
    assert client.post(f"/api/orders/{order['id']}/discontinue").status_code == 409


def test_a_study_arriving_with_the_orders_accession_number_is_matched_to_it(
    workflow: Workflow,
) -> None:
    patient_id = unique("A")
    order = placed(workflow.http("a.clinician"), "A", patient_id)

    study_uid = study(workflow.port, "A_CT", patient_id, accession=order["accession_number"])

    matched = wait_for(
        "the order to be matched",
        lambda: (
            (o := workflow.http("a.clinician").get(f"/api/orders/{order['id']}").json())[
                "study_uid"
            ]
            and o
        ),
    )
    assert (matched["study_uid"], matched["status"]) == (study_uid, "completed")
    unmatched = workflow.http("a.clinician").get("/api/orders/unmatched").json()
    assert study_uid not in [s["study_uid"] for s in unmatched]


def test_a_study_with_a_wrong_accession_is_listed_unmatched_and_matched_by_hand(
    workflow: Workflow,
) -> None:
    client, patient_id = workflow.http("a.clinician"), unique("A")
    order = placed(client, "A", patient_id)
    study_uid = study(workflow.port, "A_CT", patient_id, accession="TYPO-" + unique("X")[:8])

    def listed() -> list[str]:
        return [s["study_uid"] for s in client.get("/api/orders/unmatched").json()]

    wait_for("the study to be listed", lambda: study_uid in listed())
    assert study_uid not in [
        s["study_uid"] for s in workflow.http("b.clinician").get("/api/orders/unmatched").json()
    ]
    other = placed(client, "A", unique("A"))
    refused = client.post(f"/api/orders/{other['id']}/match", json={"study_uid": study_uid})
    assert refused.status_code == 409 and "another patient" in refused.text

    matched = client.post(f"/api/orders/{order['id']}/match", json={"study_uid": study_uid})

    assert matched.status_code == 200, matched.text
    assert (matched.json()["study_uid"], matched.json()["status"]) == (study_uid, "completed")
    assert study_uid not in listed()


def test_an_order_lets_a_partner_trusts_staff_see_the_patients_images_until_cancelled(
    workflow: Workflow,
) -> None:
    nhs_number = next(NHS_NUMBERS)
    at_a = study(workflow.port, "A_CT", unique("A"), nhs_number=nhs_number)
    wait_for("A's study", lambda: studies_seen(workflow, "a.clinician", StudyInstanceUID=at_a))
    assert studies_seen(workflow, "b.clinician", StudyInstanceUID=at_a) == []

    order = placed(
        workflow.http("b.clinician"), "B", unique("B"), patient={"nhs_number": nhs_number}
    )

    assert studies_seen(workflow, "b.clinician", StudyInstanceUID=at_a) == [at_a]
    # C has no agreement with A: an order at C opens nothing
    placed(workflow.http("c.clinician"), "C", unique("C"), patient={"nhs_number": nhs_number})
    assert studies_seen(workflow, "c.clinician", StudyInstanceUID=at_a) == []
    workflow.http("b.clinician").post(f"/api/orders/{order['id']}/cancel")
    assert studies_seen(workflow, "b.clinician", StudyInstanceUID=at_a) == []


def test_an_order_names_the_trusts_record_of_the_patient(workflow: Workflow) -> None:
    answer = place(workflow.http("a.clinician"), "A", unique("A"), patient={"issuer": "B-MRN"})
    assert answer.status_code == 409 and "not a patient record of A" in answer.text


def _row(order: dict[str, Any]) -> str:
    """How the orders page shows an order's accession number (``RIX12`` is not ``RIX123``)."""
    return f"accession {order['accession_number']}<"


def test_the_orders_page_lists_the_trusts_orders_and_links_matched_studies(
    workflow: Workflow,
) -> None:
    patient_id = unique("A")
    waiting = placed(workflow.http("a.clinician"), "A", patient_id, modality="MR")
    done = placed(workflow.http("a.clinician"), "A", patient_id)
    elsewhere = placed(workflow.http("b.clinician"), "B", unique("B"))
    study_uid = study(workflow.port, "A_CT", patient_id, accession=done["accession_number"])
    wait_for(
        "the order to be matched",
        lambda: workflow.http("a.clinician").get(f"/api/orders/{done['id']}").json()["study_uid"],
    )

    page = workflow.http("a.clinician").get("/orders", params={"patient": f"A-MRN/{patient_id}"})

    assert page.status_code == 200, page.text
    assert _row(waiting) in page.text and _row(done) in page.text
    assert f'href="/studies/{study_uid}"' in page.text
    assert _row(elsewhere) not in workflow.http("a.clinician").get("/orders").text
    assert 'href="/orders"' in page.text  # the nav link
    completed = workflow.http("a.clinician").get(
        "/orders", params={"patient": f"A-MRN/{patient_id}", "status": "completed"}
    )
    assert _row(done) in completed.text
    assert _row(waiting) not in completed.text
    assert workflow.http("a.clinician").get("/orders", params={"status": "lost"}).status_code == 409
    assert workflow.region.admin.get("/orders").status_code == 403  # no trust's staff
