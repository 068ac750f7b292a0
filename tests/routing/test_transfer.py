"""A patient moves to another trust (``POST /api/transfers``): the recent studies the
receiving trust may now see, from every other trust, arrive at its PACS filed under its
own hospital number when it has one (PS3.3 C.7.1.1: Patient ID with Issuer of Patient ID;
the sender's ID moves to Other Patient IDs Sequence), else under the sender's, stated with
its issuer, with the NHS number beside it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from pydicom.dataset import Dataset
from typer.testing import CliRunner

from rix.cli.main import app
from tests.region.region import NHS, Region, instances, issuer_of, parse, received_by
from tests.region.test_identity import other_ids, without_identity
from tests.routing import index
from tests.routing.transfers import (
    DOWN,
    MOVING_AT_A,
    MOVING_AT_C,
    MOVING_NHS,
    NEWCOMER_AT_A,
    NEWCOMER_AT_C,
    NEWCOMER_NHS,
    finished,
    sop_uids,
)


def transfer_to_b(moving: Region, nhs_number: str) -> dict[str, Dataset]:
    """A B clinician's transfer of the patient from A; what B's PACS received. Each
    patient here has two recent studies B may see, of two instances each: the progress
    an administrator reads (a clinician may not) says so."""
    moving.pacs["B"].clear()
    clinician = moving.http(moving.staff["b.clinician"])
    body = {"to_trust": "B", "from_trust": "A", "nhs_number": nhs_number}
    answer = clinician.post("/api/transfers", json=body)
    assert answer.status_code == 202, answer.text
    job, progress = answer.json()["job"], answer.json()["progress"]
    assert progress == f"/api/jobs/{job}"

    detail = finished(moving, job)

    assert (detail["kind"], detail["state"]) == ("transfer", "done")
    assert detail["deliveries"] == {"done": 2, "of": 2, "instances": 4}
    assert clinician.get(progress).status_code == 403
    return {uid: parse(data) for uid, data in received_by(moving.pacs["B"]).items()}


def test_a_transfer_sends_the_other_trusts_recent_studies_under_the_receivers_own_id(
    moving: Region,
) -> None:
    received = transfer_to_b(moving, MOVING_NHS)

    # neither B's own study nor A's from three years ago (transfer_days is 365)
    assert sorted(received) == sop_uids(MOVING_AT_A, MOVING_AT_C)
    for sender in (MOVING_AT_A, MOVING_AT_C):
        for sent in instances(sender):
            ds = received[str(sent.SOPInstanceUID)]
            assert (ds.PatientID, ds.IssuerOfPatientID) == ("B200", issuer_of("B"))
            assert {(sender.patient_id, issuer_of(str(sender.trust))), (MOVING_NHS, NHS)} <= (
                other_ids(ds)
            )
            as_sent = parse(moving.sent[str(sent.SOPInstanceUID)])
            assert without_identity(ds) == without_identity(as_sent)


def test_a_transfer_of_a_patient_new_to_the_trust_keeps_the_senders_id_and_issuer(
    moving: Region,
) -> None:
    received = transfer_to_b(moving, NEWCOMER_NHS)

    assert sorted(received) == sop_uids(NEWCOMER_AT_A, NEWCOMER_AT_C)
    for sender, other in ((NEWCOMER_AT_A, NEWCOMER_AT_C), (NEWCOMER_AT_C, NEWCOMER_AT_A)):
        for sent in instances(sender):
            ds = received[str(sent.SOPInstanceUID)]
            assert (ds.PatientID, ds.IssuerOfPatientID) == (sender.patient_id, sender.issuer)
            assert other_ids(ds) == {(NEWCOMER_NHS, NHS), (other.patient_id, other.issuer)}
            as_sent = parse(moving.sent[str(sent.SOPInstanceUID)])
            assert without_identity(ds) == without_identity(as_sent)


def test_a_clinician_of_an_unrelated_trust_may_not_request_a_transfer(moving: Region) -> None:
    body = {"to_trust": "B", "from_trust": "A", "nhs_number": MOVING_NHS}
    answer = moving.http(moving.staff["d.clinician"]).post("/api/transfers", json=body)
    assert answer.status_code == 403, answer.text
    assert "requested by the receiving trust" in answer.json()["error"]


def test_a_trust_without_a_record_of_the_patient_may_not_send_them_elsewhere(
    moving: Region,
) -> None:
    """A clinician of D saying the patient leaves D, when D holds no record of them, would
    open the patient's images to B's staff on their word alone."""
    body = {"to_trust": "B", "from_trust": "D", "nhs_number": MOVING_NHS}
    answer = moving.http(moving.staff["d.clinician"]).post("/api/transfers", json=body)
    assert answer.status_code == 403, answer.text


def test_transfer_wait_exits_non_zero_naming_the_deliveries_that_did_not_arrive(
    moving: Region,
) -> None:
    """``rix transfer --wait`` to E, whose PACS is down: its delivery fails and waits to be
    tried again when an administrator cancels the transfer. The command must not report
    success to the script that waited for it."""
    server = moving.server
    where = ["--data", str(server.data)]
    where += ["--database-url", server.database_url] if server.database_url else []
    args = ["transfer", "--to", DOWN, "--from", "A", "--nhs-number", MOVING_NHS, "--wait"]
    newest = moving.admin.get("/api/jobs", params={"kind": "transfer", "limit": 1}).json()
    before = newest[0]["id"] if newest else 0
    with ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(CliRunner().invoke, app, [*args, *where])

        def failed_once() -> int | None:
            jobs = moving.admin.get("/api/jobs", params={"kind": "transfer", "limit": 1}).json()
            if not jobs or jobs[0]["id"] == before:
                return None
            job = int(jobs[0]["id"])
            children = moving.admin.get("/api/jobs", params={"parent": job}).json()
            return job if any(c["attempts"] and c["last_error"] for c in children) else None

        job = index.wait_for("the delivery to E to fail once", failed_once)
        assert moving.admin.post(f"/api/jobs/{job}/cancel").status_code == 200
        result = waiting.result(timeout=60)

    assert result.exit_code == 1, result.output
    output = " ".join(result.output.split())
    assert "0 of 1 studies delivered" in output
    assert "cancelled" in output
