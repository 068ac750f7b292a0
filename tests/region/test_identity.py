"""Patient identity on the way out (``rix.region.identity``), as a real PACS receives it.

A trust's PACS files images by its own hospital numbers. A study sent by C-MOVE or C-GET
to an AE of another trust carries that trust's local ID when the patient is linked to a
record there (PS3.3 C.7.1.1: Patient ID scoped by Issuer of Patient ID; the sender's ID
moves to Other Patient IDs Sequence, 0010,1002); otherwise the sender's ID and issuer,
the issuer stated explicitly, with the NHS number and the person's other records in
Other Patient IDs. To the sender's own trust, or an AE of no trust, the bytes go out
exactly as stored; and what is stored never changes.

The receivers are DCMTK storescp processes writing what arrives bit for bit (``+B``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydicom.dataset import Dataset

from tests.peers import dcmtk
from tests.peers.dicomweb import after_file_meta, parse_multipart
from tests.peers.objects import instance_key, stored
from tests.region.region import (
    INSTANCES_PER_STUDY,
    NHS,
    SUCCESS,
    Caller,
    Patient,
    Region,
    get_study,
    instances,
    issuer_of,
    move_study,
    pacs_of,
    parse,
    received_by,
    region,
)

# one person at AAA and BBB: the same NHS number and date of birth link the two records
LINKED_AT_AAA = Patient(key="linked-aaa", trust="AAA", patient_id="A100", nhs_number="9434765919")
LINKED_AT_BBB = Patient(key="linked-bbb", trust="BBB", patient_id="B200", nhs_number="9434765919")
# another person, with records at AAA and CCC but none at BBB
UNKNOWN_TO_BBB = Patient(key="aaa-only", trust="AAA", patient_id="A101", nhs_number="9434765927")
ALSO_AT_CCC = Patient(key="ccc-record", trust="CCC", patient_id="C300", nhs_number="9434765927")
PATIENTS = (LINKED_AT_AAA, LINKED_AT_BBB, UNKNOWN_TO_BBB, ALSO_AT_CCC)
NO_TRUST = "ELSEWHERE"  # a destination registered to no trust
AAA_PACS = Caller(ae_title=pacs_of("AAA"))
BBB_PACS = Caller(ae_title=pacs_of("BBB"))
IDENTITY = ("PatientID", "IssuerOfPatientID", "OtherPatientIDsSequence")


@pytest.fixture(scope="module")
def world(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Region]:
    """AAA, BBB and CCC with their PACS; BBB may see AAA's images of the linked person (an
    agreement and a referral at BBB), so BBB's PACS can fetch them by C-GET."""
    folder = tmp_path_factory.mktemp("identity")
    with region(folder, backend, ("AAA", "BBB", "CCC")) as r:
        r.add_destination(NO_TRUST, None, folder / NO_TRUST)
        r.add_staff("aaa.clinician", "clinician", "AAA")
        r.send(PATIENTS)
        r.agree("AAA", "BBB", True)
        r.refer(r.add_staff("bbb.clinician", "clinician", "BBB"), LINKED_AT_BBB)
        yield r


def sent_by(world: Region, patient: Patient) -> dict[str, bytes]:
    """SOP Instance UID → the Data Set bytes the patient's PACS sent to rix."""
    return {uid: world.sent[uid] for uid in (str(ds.SOPInstanceUID) for ds in instances(patient))}


def moved_to(world: Region, destination: dcmtk.StoreSCP, patient: Patient) -> dict[str, bytes]:
    """C-MOVE of the patient's study by AAA's PACS; what ``destination`` received."""
    destination.clear()
    result = move_study(world.port, AAA_PACS, patient.study_uid, destination.ae_title)
    assert (result.status, result.completed) == (SUCCESS, INSTANCES_PER_STUDY), result.error_comment
    return received_by(destination)


def other_ids(ds: Dataset) -> set[tuple[str, str]]:
    return {(i.PatientID, i.IssuerOfPatientID) for i in ds.get("OtherPatientIDsSequence", [])}


def without_identity(ds: Dataset) -> Dataset:
    for keyword in IDENTITY:
        if keyword in ds:
            delattr(ds, keyword)
    return ds


def test_cmove_to_another_trusts_pacs_carries_that_trusts_patient_id(world: Region) -> None:
    received = moved_to(world, world.pacs["BBB"], LINKED_AT_AAA)
    sent = sent_by(world, LINKED_AT_AAA)
    assert sorted(received) == sorted(sent)
    for uid, data in received.items():
        ds = parse(data)
        assert (ds.PatientID, ds.IssuerOfPatientID) == ("B200", issuer_of("BBB"))
        assert ("A100", issuer_of("AAA")) in other_ids(ds)
        assert (LINKED_AT_AAA.nhs_number, NHS) in other_ids(ds)
        assert without_identity(ds) == without_identity(parse(sent[uid]))


def test_cmove_of_a_patient_the_trust_does_not_know_keeps_the_senders_id_and_lists_the_nhs_number(
    world: Region,
) -> None:
    received = moved_to(world, world.pacs["BBB"], UNKNOWN_TO_BBB)
    sent = sent_by(world, UNKNOWN_TO_BBB)
    assert sorted(received) == sorted(sent)
    for uid, data in received.items():
        ds = parse(data)
        assert "IssuerOfPatientID" not in parse(sent[uid])  # the PACS sent its ID bare
        assert (ds.PatientID, ds.IssuerOfPatientID) == ("A101", issuer_of("AAA"))
        assert other_ids(ds) == {(UNKNOWN_TO_BBB.nhs_number, NHS), ("C300", issuer_of("CCC"))}
        assert without_identity(ds) == without_identity(parse(sent[uid]))


def test_cmove_to_a_pacs_of_the_senders_own_trust_delivers_the_bytes_as_stored(
    world: Region,
) -> None:
    received = moved_to(world, world.pacs["AAA"], LINKED_AT_AAA)
    assert received == sent_by(world, LINKED_AT_AAA)


def test_cmove_to_a_destination_of_no_trust_delivers_the_bytes_as_stored(world: Region) -> None:
    received = moved_to(world, world.destinations[NO_TRUST], LINKED_AT_AAA)
    assert received == sent_by(world, LINKED_AT_AAA)


def test_cget_by_another_trusts_pacs_carries_that_trusts_patient_id(world: Region) -> None:
    result = get_study(world.port, BBB_PACS, LINKED_AT_AAA.study_uid)
    sent = sent_by(world, LINKED_AT_AAA)
    assert (result.status, sorted(result.received)) == (SUCCESS, sorted(sent))
    for uid, data in result.received.items():
        ds = parse(data)
        assert (ds.PatientID, ds.IssuerOfPatientID) == ("B200", issuer_of("BBB"))
        assert ("A100", issuer_of("AAA")) in other_ids(ds)
        assert without_identity(ds) == without_identity(parse(sent[uid]))


def test_rewriting_identities_on_the_way_out_leaves_the_stored_objects_unchanged(
    world: Region,
) -> None:
    moved_to(world, world.pacs["BBB"], LINKED_AT_AAA)
    moved_to(world, world.pacs["BBB"], UNKNOWN_TO_BBB)
    assert get_study(world.port, BBB_PACS, LINKED_AT_AAA.study_uid).status == SUCCESS
    http = world.http(world.staff["aaa.clinician"])
    for patient in (LINKED_AT_AAA, UNKNOWN_TO_BBB):
        for ds in instances(patient):
            uid = str(ds.SOPInstanceUID)
            key = instance_key(patient.study_uid, str(ds.SeriesInstanceUID), uid)
            assert stored(world.server.data, key)[1] == world.sent[uid]
            path = f"/dicomweb/studies/{patient.study_uid}/series/{ds.SeriesInstanceUID}"
            answer = http.get(
                f"{path}/instances/{uid}",
                headers={
                    "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'
                },
            )
            assert answer.status_code == 200, answer.text
            [part] = parse_multipart(answer.headers["content-type"], answer.content)
            assert after_file_meta(part.body) == world.sent[uid]
    assert world.server.rix("verify", check=False).returncode == 0
