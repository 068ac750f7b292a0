"""HL7 v2 ADT over a real MLLP socket: A02 (transfer) moves the patient's images to the
new trust's PACS, A12 (cancel transfer) drops the deliveries not yet made; a message rix
cannot act on is answered AR with the reason in MSA-3, and the listener carries on, on
the same connection and on new ones (HL7 v2.5 2.9.2 original acknowledgement mode).

Only the receiving trust's own systems announce arrivals: MSH-4 names that trust, and the
connection comes from the host of one of its registered AEs (here all on 127.0.0.1)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.region.region import Region, issuer_of, pacs_of, received_by
from tests.routing import index
from tests.routing.mllp import adt, by_hospital_number, by_nhs_number, connection, exchange
from tests.routing.transfers import (
    MOVING_AT_A,
    MOVING_NHS,
    NEWCOMER_NHS,
    finished,
    hl7_port,
    sop_uids,
)

QUEUED = "transfer queued as job "


def job_of(text: str) -> int:
    assert text.startswith(QUEUED), text
    return int(text.removeprefix(QUEUED))


def deliveries_of(moving: Region, job: int) -> list[dict[str, Any]]:
    answer = moving.admin.get("/api/jobs", params={"parent": job})
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


def test_an_adt_a02_moves_the_patients_images_to_the_new_locations_trust(moving: Region) -> None:
    moving.pacs["D"].clear()
    a02 = adt(
        "A02",
        "A02-TO-D",
        facility="D",
        new_location="D",
        prior_location="A",
        patient=by_nhs_number(MOVING_NHS),
    )
    with connection(hl7_port(moving)) as sock:
        ack = exchange(sock, a02)

    assert (ack.code, ack.control_id) == ("AA", "A02-TO-D"), ack
    detail = finished(moving, job_of(ack.text))
    assert detail["deliveries"] == {"done": 1, "of": 1, "instances": 2}
    # D's one agreement is with A: C's study stays, as does B's
    assert sorted(received_by(moving.pacs["D"])) == sop_uids(MOVING_AT_A)


def test_an_adt_a12_cancels_the_deliveries_not_yet_made(moving: Region) -> None:
    """E's PACS is down: its delivery waits between attempts when the A12 comes."""
    a02 = adt(
        "A02", "A02-TO-E", facility="E", prior_location="A", patient=by_nhs_number(MOVING_NHS)
    )
    a12 = adt(
        "A12",
        "A12-TO-E",
        facility="E",
        patient=by_hospital_number(MOVING_AT_A.patient_id, issuer_of("A")),
    )
    with connection(hl7_port(moving)) as sock:
        accepted = exchange(sock, a02)
        assert accepted.code == "AA", accepted
        job = job_of(accepted.text)
        index.wait_for(
            "the transfer to run and its delivery to fail",
            lambda: (
                moving.admin.get(f"/api/jobs/{job}").json()["state"] == "done"
                and [d for d in deliveries_of(moving, job) if d["attempts"] and d["last_error"]]
            ),
        )
        cancelled = exchange(sock, a12)

    assert (cancelled.code, cancelled.control_id) == ("AA", "A12-TO-E"), cancelled
    assert cancelled.text == "1 transfer jobs cancelled"
    assert [d["state"] for d in deliveries_of(moving, job)] == ["cancelled"]
    assert index.delivered(moving.server, f"ae:{pacs_of('E')}") == []


ORU = "MSH|^~\\&|LAB|HIS|RIX|RIX|20261127120000||ORU^R01^ORU_R01|ORU-1|P|2.5\rPID|1||A100\r"


@pytest.mark.parametrize(
    ("message", "control_id", "reason"),
    [
        pytest.param(b"this is not HL7 at all", "", "not an HL7 v2 message", id="garbage"),
        pytest.param(ORU, "ORU-1", "rix does not process ORU^R01", id="unsupported-type"),
        pytest.param(
            adt(
                "A02",
                "UNKNOWN-TRUST",
                facility="ZZZ",
                new_location="ZZZ",
                patient=by_nhs_number(MOVING_NHS),
            ),
            "UNKNOWN-TRUST",
            "no trust 'ZZZ'",
            id="unknown-trust",
        ),
        pytest.param(
            adt("A02", "NO-PID", facility="D", new_location="D", patient=None),
            "NO-PID",
            "the message has no PID segment",
            id="no-pid",
        ),
        pytest.param(
            adt("A02", "BAD-NHS", facility="D", patient=by_nhs_number("9434765910")),
            "BAD-NHS",
            "PID-3 names no patient",
            id="invalid-nhs-number",
        ),
        pytest.param(
            adt("A02", "NO-RECORD", facility="D", patient=by_hospital_number("X9", "A-MRN")),
            "NO-RECORD",
            "A-MRN/X9",
            id="unknown-hospital-number",
        ),
        pytest.param(
            adt(
                "A02",
                "FOR-ANOTHER",
                facility="D",
                new_location="B",
                patient=by_nhs_number(MOVING_NHS),
            ),
            "FOR-ANOTHER",
            "trust D cannot announce a transfer to B",
            id="another-trusts-arrival",
        ),
    ],
)
def test_a_message_rix_cannot_act_on_is_rejected_with_a_reason_and_the_listener_carries_on(
    moving: Region, message: bytes | str, control_id: str, reason: str
) -> None:
    harmless = adt("A12", "NOTHING-TO-CANCEL", facility="C", patient=by_nhs_number(NEWCOMER_NHS))
    with connection(hl7_port(moving)) as sock:
        rejected = exchange(sock, message)
        same_connection = exchange(sock, harmless)
    with connection(hl7_port(moving)) as sock:
        new_connection = exchange(sock, harmless)

    assert (rejected.code, rejected.control_id) == ("AR", control_id), rejected
    assert reason in rejected.text
    for ack in (same_connection, new_connection):
        assert (ack.code, ack.text) == ("AA", "0 transfer jobs cancelled"), ack


def test_a_transfer_from_a_host_the_trust_has_not_registered_is_rejected(moving: Region) -> None:
    a02 = adt("A02", "ELSEWHERE", facility="D", patient=by_nhs_number(MOVING_NHS))
    with connection(hl7_port(moving), source="127.0.0.2") as sock:
        rejected = exchange(sock, a02)

    assert (rejected.code, rejected.control_id) == ("AR", "ELSEWHERE"), rejected
    assert rejected.text == "127.0.0.2 is not a registered host of trust D"
