"""Orders over a real MLLP socket: ORM^O01 and OMI^O23 with ORC-1 NW, XO, CA, DC and SC,
acknowledged AA once applied; a message rix cannot apply is answered AR with the reason
in MSA-3 and ERR, nothing of it is kept, and the listener carries on."""

from __future__ import annotations

import pytest
from pydicom.uid import generate_uid

from tests.workflow.ordering import Placed, Workflow, hospital_number, orm, unique

NHS = "9434765919"


def test_an_orm_new_order_is_placed_for_a_new_record_with_an_accession_number(
    workflow: Workflow,
) -> None:
    placer, patient_id = unique("P"), unique("A")
    message = orm(Placed(placer=placer), patient=hospital_number(patient_id, "A"))

    reply = workflow.send(message)

    assert reply.code == "AA", reply
    order = workflow.order("a.clinician", placer)
    assert order["patient"] == f"A-MRN/{patient_id}"
    assert order["patient_name"] == "Order^Olive"
    assert (order["status"], order["priority"]) == ("scheduled", "outpatient")
    assert order["accession_number"] == f"RIX{order['id']}"
    assert (order["modality"], order["body_part"], order["procedure_code"]) == (
        "CT",
        "HEAD",
        "CTHEAD",
    )
    assert (order["subspecialty"], order["source"]) == ("neuro", "hl7")
    assert order["requested_study_uid"]


@pytest.mark.parametrize(
    ("priority", "patient_class", "expected"),
    [
        ("S", "O", "emergency"),
        ("", "E", "emergency"),
        ("", "I", "inpatient"),
        ("", "O", "outpatient"),
    ],
)
def test_stat_or_the_patient_class_sets_the_priority(
    workflow: Workflow, priority: str, patient_class: str, expected: str
) -> None:
    placer = unique("P")
    message = orm(
        Placed(placer=placer, priority=priority),
        patient=hospital_number(unique("A"), "A"),
        patient_class=patient_class,
    )
    assert workflow.send(message).code == "AA"
    assert workflow.order("a.clinician", placer)["priority"] == expected


def test_an_omi_o23_carries_the_imaging_keys_of_ihe_scheduled_workflow(
    workflow: Workflow,
) -> None:
    placer, accession, study_uid = unique("P"), unique("ACC")[:16], str(generate_uid())
    placed = Placed(
        placer=placer,
        accession=accession,
        study_uid=study_uid,
        requested_procedure_id="RP7",
        modality="MR",
        station="A_MR",
    )
    reply = workflow.send(orm(placed, patient=hospital_number(unique("A"), "A"), omi=True))

    assert reply.code == "AA", reply
    order = workflow.order("a.clinician", placer)
    assert order["accession_number"] == accession
    assert order["requested_study_uid"] == study_uid
    assert order["requested_procedure_id"] == "RP7"
    assert (order["modality"], order["station_ae"]) == ("MR", "A_MR")


def test_xo_changes_ca_cancels_and_a_resent_new_order_is_one_order(workflow: Workflow) -> None:
    placer, patient = unique("P"), hospital_number(unique("A"), "A")
    new = orm(Placed(placer=placer), patient=patient)
    assert workflow.send(new).code == "AA"
    assert workflow.send(new).code == "AA"  # a resend after a lost ACK
    assert len([o for o in workflow.orders_of("a.clinician") if o["placer_number"] == placer]) == 1

    changed = orm(
        Placed(placer=placer, control="XO", modality="MR", body_part="KNEE"), patient=patient
    )
    assert workflow.send(changed).code == "AA"
    order = workflow.order("a.clinician", placer)
    assert (order["modality"], order["body_part"]) == ("MR", "KNEE")

    reply = workflow.send(orm(Placed(placer=placer, control="CA"), patient=patient))
    assert reply.code == "AA", reply
    assert workflow.order("a.clinician", placer)["status"] == "cancelled"


def test_sc_sets_the_status_and_dc_discontinues_an_order_in_progress(workflow: Workflow) -> None:
    placer, patient = unique("P"), hospital_number(unique("A"), "A")
    assert workflow.send(orm(Placed(placer=placer), patient=patient)).code == "AA"

    started = orm(Placed(placer=placer, control="SC", status="IP"), patient=patient)
    assert workflow.send(started).code == "AA"
    assert workflow.order("a.clinician", placer)["status"] == "in-progress"

    cancel = workflow.send(orm(Placed(placer=placer, control="CA"), patient=patient))
    assert cancel.code == "AR" and "discontinue it instead" in cancel.text, cancel
    assert workflow.send(orm(Placed(placer=placer, control="DC"), patient=patient)).code == "AA"
    assert workflow.order("a.clinician", placer)["status"] == "discontinued"


def _bad(workflow: Workflow, case: str) -> tuple[str, str]:
    """(message, source address) of each refused case; the placer is the case's name."""
    patient = hospital_number(unique("A"), "A")
    messages = {
        "garbage": "this is not HL7 at all",
        "no-orc": orm(patient=patient),
        "unknown-control": orm(Placed(placer=case, control="ZZ"), patient=patient),
        "bad-time": orm(Placed(placer=case, when="2026-12-01"), patient=patient),
        "bad-study-uid": orm(Placed(placer=case, study_uid="1.2.x"), patient=patient, omi=True),
        "another-trusts-record": orm(Placed(placer=case), patient=hospital_number("X", "B")),
        "unknown-order": orm(Placed(placer=case, control="XO"), patient=patient),
        "unknown-trust": orm(Placed(placer=case), facility="ZZZ", patient=patient),
        "second-group-bad": orm(
            Placed(placer=case), Placed(placer=case + "-2", control="ZZ"), patient=patient
        ),
        "unregistered-host": orm(Placed(placer=case), patient=patient),
    }
    source = "127.0.0.2" if case == "unregistered-host" else "127.0.0.1"
    return messages[case], source


@pytest.mark.parametrize(
    ("case", "reason", "err_code"),
    [
        ("garbage", "not an HL7 v2 message", "100"),
        ("no-orc", "no ORC segment", "100"),
        ("unknown-control", "rix does not process ORC-1 ZZ", "103"),
        ("bad-time", "is not an HL7 date/time", "102"),
        ("bad-study-uid", "is not a Study Instance UID", "102"),
        ("another-trusts-record", "names no hospital number of A", "204"),
        ("unknown-order", "no order unknown-order at A", "204"),
        ("unknown-trust", "no trust 'ZZZ'", "204"),
        ("second-group-bad", "rix does not process ORC-1 ZZ", "103"),
        ("unregistered-host", "127.0.0.2 is not a registered host of trust A", "207"),
    ],
)
def test_a_message_rix_cannot_apply_is_refused_with_the_reason_and_nothing_is_kept(
    workflow: Workflow, case: str, reason: str, err_code: str
) -> None:
    message, source = _bad(workflow, case)
    before = len(workflow.orders_of("a.clinician", limit=1000))

    reply = workflow.send(message, source)

    assert reply.code == "AR", reply
    assert reason in reply.text
    assert reply.err[3].split("^")[0] == err_code and reason in reply.err[8], reply.err
    assert len(workflow.orders_of("a.clinician", limit=1000)) == before
    # the listener carries on
    fine = unique("P")
    assert (
        workflow.send(orm(Placed(placer=fine), patient=hospital_number(unique("A"), "A"))).code
        == "AA"
    )
