"""Who sees which studies in the region (``rix.access``), asked through every front end.

A cell of the matrix is a viewing trust, a patient's study, and the patient's grounds at
the viewing trust: a referral, the viewing clinician's break-glass, an expired referral,
or none. Every cell is asked with the sharing agreement of AAA and BBB made, and again
after it has ended (AAA and CCC never agree). What the answer must be comes from the
rules alone (``visible``), and every front end must give it, to the viewing trust's PACS
(an AE registered to the trust) and to its clinician (a user named by User Identity
Negotiation over DICOM, PS3.7 D.3.3.7, and by a bearer token over HTTP):

- C-FIND and QIDO-RS match a visible study and do not match a hidden one (PS3.4 C.4.1);
- C-MOVE to the trust's PACS and C-GET deliver a visible study, and refuse a hidden one
  with 0x0124 Refused: Not Authorized and an Error Comment, sending nothing (PS3.4
  C.4.2, C.4.3; PS3.7 C.5);
- WADO-RS answers 200 for a visible study, 403 for a hidden one, 404 for an unknown one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

import pytest
from pydicom.uid import generate_uid

from tests.peers import scu
from tests.region.region import (
    NOT_AUTHORIZED,
    SUCCESS,
    Caller,
    Patient,
    Region,
    Staff,
    an_hour_ago,
    find,
    find_studies,
    get_study,
    instances,
    move,
    move_study,
    pacs_of,
    received_by,
    region,
)

AAA_LINKED = Patient(key="aaa-linked", trust="AAA", patient_id="A100", nhs_number="9434765919")
AAA_UNLINKED = Patient(key="aaa-unlinked", trust="AAA", patient_id="A101")
BBB_LINKED = Patient(key="bbb-linked", trust="BBB", patient_id="B200", nhs_number="9434765919")
BBB_REFERRED = Patient(key="bbb-referred", trust="BBB", patient_id="B201", nhs_number="9434765927")
BBB_GLASS = Patient(key="bbb-glass", trust="BBB", patient_id="B202", nhs_number="9434765935")
BBB_EXPIRED = Patient(key="bbb-expired", trust="BBB", patient_id="B203", nhs_number="9434765943")
CCC_REFERRED = Patient(key="ccc-referred", trust="CCC", patient_id="C300", nhs_number="9434765951")
CCC_GLASS = Patient(key="ccc-glass", trust="CCC", patient_id="C301", nhs_number="9434765978")
UNOWNED = Patient(key="unowned", trust=None, patient_id="U400")  # sent by an unregistered AE
PATIENTS = (
    AAA_LINKED,
    AAA_UNLINKED,
    BBB_LINKED,
    BBB_REFERRED,
    BBB_GLASS,
    BBB_EXPIRED,
    CCC_REFERRED,
    CCC_GLASS,
    UNOWNED,
)
AGREED_PAIRS = {frozenset(("AAA", "BBB"))}  # while the agreement stands


class Grounds(StrEnum):
    """What the viewing trust has for the patient (set up before any cell is asked)."""

    NONE = "no grounds"
    REFERRAL = "a referral"
    EXPIRED_REFERRAL = "an expired referral"
    BREAK_GLASS = "the clinician's break-glass"


@dataclass(frozen=True, slots=True)
class Cell:
    viewer: str  # the viewing trust
    patient: Patient
    grounds: Grounds

    def __str__(self) -> str:
        return f"{self.viewer} views {self.patient} with {self.grounds}"


NONE, REFERRAL, EXPIRED, GLASS = Grounds
CELLS = (
    #   viewer  the study      the patient's grounds at the viewing trust
    Cell("AAA", AAA_LINKED, NONE),  # own trust: no grounds needed
    Cell("AAA", AAA_UNLINKED, NONE),
    Cell("AAA", BBB_LINKED, NONE),  # the person's record at AAA is no relationship
    Cell("AAA", BBB_REFERRED, REFERRAL),
    Cell("AAA", BBB_GLASS, GLASS),  # the clinician's: the PACS cannot declare one
    Cell("AAA", BBB_EXPIRED, EXPIRED),
    Cell("AAA", CCC_REFERRED, REFERRAL),  # no agreement with CCC
    Cell("AAA", CCC_GLASS, NONE),  # break-glass without an agreement is refused: none held
    Cell("AAA", UNOWNED, NONE),  # a study of no trust is not a trust's
    Cell("BBB", AAA_LINKED, NONE),  # nor is the person's record at BBB
    Cell("BBB", AAA_UNLINKED, REFERRAL),  # agreements share both ways; referred by record ID
    Cell("BBB", BBB_LINKED, NONE),
)
PACS, CLINICIAN = "its PACS", "its clinician"


def visible(
    user_trust: str,
    study_trust: str | None,
    agreement: bool,
    relationship: bool,
    break_glass: bool,
) -> bool:
    """The access rules, restated: a trust's own studies; another trust's only with an
    agreement between the two and a relationship or break-glass; a study of no trust,
    no trust's staff."""
    if study_trust is None:
        return False
    if study_trust == user_trust:
        return True
    return agreement and (relationship or break_glass)


def expected(cell: Cell, agreement_stands: bool, who: str) -> bool:
    owner = cell.patient.trust
    return visible(
        cell.viewer,
        owner,
        agreement=agreement_stands and frozenset((cell.viewer, owner)) in AGREED_PAIRS,
        relationship=cell.grounds is REFERRAL,
        break_glass=cell.grounds is GLASS and who == CLINICIAN,  # a machine declares none
    )


def clinician(world: Region, trust: str) -> Staff:
    return world.staff[f"{trust.lower()}.clinician"]


def caller(world: Region, trust: str, who: str) -> Caller:
    """The trust's PACS, or its clinician at a workstation rix does not know (as an AE,
    it would see only studies of no trust: what it sees beyond is the user's)."""
    if who == PACS:
        return Caller(ae_title=pacs_of(trust))
    return clinician(world, trust).with_token(f"{trust}_WS")


def sop_uids(patient: Patient) -> list[str]:
    return sorted(str(ds.SOPInstanceUID) for ds in instances(patient))


@pytest.fixture(scope="module")
def world(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Region]:
    with region(tmp_path_factory.mktemp("visibility"), backend, ("AAA", "BBB", "CCC")) as r:
        for trust in ("AAA", "BBB", "CCC"):
            r.add_staff(f"{trust.lower()}.clinician", "clinician", trust)
        r.add_staff("aaa.colleague", "clinician", "AAA")
        r.add_staff("aaa.radiographer", "radiographer", "AAA")
        r.add_staff("aaa.auditor", "auditor", "AAA")
        r.add_staff("region.admin", "region-admin", None)
        r.send(PATIENTS)
        r.agree("AAA", "BBB", True)  # a break-glass opens only what an agreement shares
        for cell in CELLS:
            staff = clinician(r, cell.viewer)
            if cell.grounds is REFERRAL:
                r.refer(staff, cell.patient)
            elif cell.grounds is EXPIRED:
                r.refer(staff, cell.patient, expires_at=an_hour_ago())
            elif cell.grounds is GLASS:
                answer = r.break_glass(staff, cell.patient)  # refused without one: below
                assert answer.status_code == 201, answer.text
        yield r


@pytest.fixture(scope="module", params=[True, False], ids=["agreed", "agreement-ended"])
def agreement(request: pytest.FixtureRequest) -> bool:
    """The matrix runs with the AAA-BBB agreement made, then again once it has ended."""
    return bool(request.param)


@pytest.fixture
def agreement_stands(world: Region, agreement: bool) -> bool:
    world.agree("AAA", "BBB", agreement)
    return agreement


# --- the matrix ---


@pytest.mark.parametrize("cell", CELLS, ids=str)
@pytest.mark.parametrize("who", [PACS, CLINICIAN])
def test_cfind_matches_a_study_only_when_the_rules_show_it(
    world: Region, agreement_stands: bool, who: str, cell: Cell
) -> None:
    found = find_studies(
        world.port, caller(world, cell.viewer, who), PatientID=cell.patient.patient_id
    )
    shown = expected(cell, agreement_stands, who)
    assert found == ([cell.patient.study_uid] if shown else [])


@pytest.mark.parametrize("cell", CELLS, ids=str)
@pytest.mark.parametrize("who", [PACS, CLINICIAN])
def test_cmove_to_the_trusts_pacs_delivers_a_visible_study_and_refuses_a_hidden_one(
    world: Region, agreement_stands: bool, who: str, cell: Cell
) -> None:
    pacs = world.pacs[cell.viewer]
    pacs.clear()
    by = caller(world, cell.viewer, who)
    result = move_study(world.port, by, cell.patient.study_uid, pacs.ae_title)
    shown = expected(cell, agreement_stands, who)
    want = (SUCCESS, sop_uids(cell.patient)) if shown else (NOT_AUTHORIZED, [])
    assert (result.status, sorted(received_by(pacs))) == want, result.error_comment
    assert bool(result.error_comment) is not shown


@pytest.mark.parametrize("cell", CELLS, ids=str)
@pytest.mark.parametrize("who", [PACS, CLINICIAN])
def test_cget_delivers_a_visible_study_and_refuses_a_hidden_one(
    world: Region, agreement_stands: bool, who: str, cell: Cell
) -> None:
    by = caller(world, cell.viewer, who)
    result = get_study(world.port, by, cell.patient.study_uid)
    shown = expected(cell, agreement_stands, who)
    want = (SUCCESS, sop_uids(cell.patient)) if shown else (NOT_AUTHORIZED, [])
    assert (result.status, sorted(result.received)) == want, result.error_comment
    assert bool(result.error_comment) is not shown


@pytest.mark.parametrize("cell", CELLS, ids=str)
def test_qido_matches_a_study_only_when_the_rules_show_it(
    world: Region, agreement_stands: bool, cell: Cell
) -> None:
    http = world.http(clinician(world, cell.viewer))
    answer = http.get("/dicomweb/studies", params={"PatientID": cell.patient.patient_id})
    assert answer.status_code == 200, answer.text
    found = [study["0020000D"]["Value"][0] for study in answer.json()]
    shown = expected(cell, agreement_stands, CLINICIAN)
    assert found == ([cell.patient.study_uid] if shown else [])


@pytest.mark.parametrize("cell", CELLS, ids=str)
def test_wado_metadata_is_200_for_a_visible_study_and_403_for_a_hidden_one(
    world: Region, agreement_stands: bool, cell: Cell
) -> None:
    http = world.http(clinician(world, cell.viewer))
    answer = http.get(f"/dicomweb/studies/{cell.patient.study_uid}/metadata")
    shown = expected(cell, agreement_stands, CLINICIAN)
    assert answer.status_code == (200 if shown else 403)


# --- outside the matrix ---


USERS = ["aaa.clinician", "bbb.clinician", "ccc.clinician", "aaa.auditor", "region.admin"]


@pytest.mark.parametrize("username", USERS)
def test_wado_of_an_unknown_study_is_404_not_403(world: Region, username: str) -> None:
    unknown = generate_uid()
    answer = world.http(world.staff[username]).get(f"/dicomweb/studies/{unknown}/metadata")
    assert answer.status_code == 404


@pytest.mark.parametrize("username", ["region.admin", "aaa.auditor"])
def test_region_administrators_and_auditors_see_no_images(world: Region, username: str) -> None:
    world.agree("AAA", "BBB", True)
    staff = world.staff[username]
    http = world.http(staff)
    assert find_studies(world.port, staff.with_password("OFFICE_WS")) == []
    assert http.get("/dicomweb/studies").json() == []
    statuses = {
        p.key: http.get(f"/dicomweb/studies/{p.study_uid}/metadata").status_code for p in PATIENTS
    }
    assert statuses == {p.key: 403 for p in PATIENTS}
    by = staff.with_token("OFFICE_WS")
    moved = move_study(world.port, by, AAA_LINKED.study_uid, pacs_of("AAA"))
    got = get_study(world.port, by, AAA_LINKED.study_uid)
    assert (moved.status, got.status, got.received) == (NOT_AUTHORIZED, NOT_AUTHORIZED, {})


def test_a_hidden_study_stays_hidden_at_every_level_and_in_every_path(world: Region) -> None:
    """The AAA clinician has no grounds for BBB's record of a person AAA also knows."""
    world.agree("AAA", "BBB", True)
    staff = clinician(world, "AAA")
    by = staff.with_token("AAA_WS")
    http = world.http(staff)
    hidden = BBB_LINKED
    ds = instances(hidden)[0]
    study, series, sop = hidden.study_uid, str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)
    patients = find(world.port, by, scu.query("PATIENT", PatientID=""), scu.PATIENT_ROOT_FIND)
    shown = [AAA_LINKED, AAA_UNLINKED, BBB_REFERRED, BBB_GLASS]
    assert sorted(str(m.PatientID) for m in patients) == [p.patient_id for p in shown]
    series_level = scu.query("SERIES", StudyInstanceUID=study, SeriesInstanceUID="")
    image_level = scu.query(
        "IMAGE", StudyInstanceUID=study, SeriesInstanceUID=series, SOPInstanceUID=""
    )
    assert find(world.port, by, series_level) == find(world.port, by, image_level) == []
    for path in ("/dicomweb/series", "/dicomweb/instances"):
        assert http.get(path, params={"PatientID": hidden.patient_id}).json() == []
    instance = f"/dicomweb/studies/{study}/series/{series}/instances/{sop}"
    wado_uri = {"requestType": "WADO", "studyUID": study, "seriesUID": series, "objectUID": sop}
    assert http.get(instance).status_code == http.get("/wado", params=wado_uri).status_code == 403
    one = scu.query("IMAGE", StudyInstanceUID=study, SeriesInstanceUID=series, SOPInstanceUID=sop)
    assert move(world.port, by, one, pacs_of("AAA")).status == NOT_AUTHORIZED


def test_a_user_named_by_password_sees_what_their_api_token_shows(world: Region) -> None:
    world.agree("AAA", "BBB", True)
    staff = clinician(world, "AAA")
    by_password = find_studies(world.port, staff.with_password("AAA_WS"))
    by_token = find_studies(world.port, staff.with_token("AAA_WS"))
    shown = [AAA_LINKED, AAA_UNLINKED, BBB_REFERRED, BBB_GLASS]  # own, referred, break-glass
    assert by_password == by_token == sorted(p.study_uid for p in shown)


def test_an_unregistered_ae_sees_only_the_studies_no_trust_owns(world: Region) -> None:
    stranger = Caller(ae_title="STRANGER")
    assert find_studies(world.port, stranger) == [UNOWNED.study_uid]
    got = get_study(world.port, stranger, UNOWNED.study_uid)
    assert (got.status, sorted(got.received)) == (SUCCESS, sop_uids(UNOWNED))
    refused = get_study(world.port, stranger, AAA_LINKED.study_uid)
    moved = move_study(world.port, stranger, AAA_LINKED.study_uid, pacs_of("AAA"))
    assert (refused.status, refused.received, moved.status) == (NOT_AUTHORIZED, {}, NOT_AUTHORIZED)


def test_break_glass_opens_the_patient_to_the_declaring_clinician_only(world: Region) -> None:
    world.agree("AAA", "BBB", True)
    path = f"/dicomweb/studies/{BBB_GLASS.study_uid}/metadata"
    declared = world.http(world.staff["aaa.clinician"]).get(path)
    colleague = world.http(world.staff["aaa.colleague"]).get(path)
    assert (declared.status_code, colleague.status_code) == (200, 403)


def test_break_glass_is_for_clinicians_and_radiologists_with_a_reason(world: Region) -> None:
    world.agree("AAA", "BBB", True)
    radiographer = world.staff["aaa.radiographer"]
    refused = world.break_glass(radiographer, BBB_EXPIRED)
    no_reason = world.http(world.staff["aaa.colleague"]).post(
        "/api/break-glass", json={"nhs_number": BBB_EXPIRED.nhs_number, "reason": "because"}
    )
    assert (refused.status_code, no_reason.status_code) == (403, 422)
    path = f"/dicomweb/studies/{BBB_EXPIRED.study_uid}/metadata"
    assert world.http(radiographer).get(path).status_code == 403


@pytest.mark.parametrize("reason", ["", "          ", "because"], ids=["empty", "blank", "short"])
def test_break_glass_without_a_reason_to_review_is_422(world: Region, reason: str) -> None:
    body = {"nhs_number": BBB_EXPIRED.nhs_number, "reason": reason}
    answer = world.http(world.staff["aaa.colleague"]).post("/api/break-glass", json=body)
    assert answer.status_code == 422, answer.text


def test_break_glass_answers_what_it_opened(world: Region) -> None:
    world.agree("AAA", "BBB", True)
    answer = world.break_glass(world.staff["aaa.clinician"], BBB_GLASS)
    assert answer.status_code == 201, answer.text
    opened = answer.json()
    assert (opened["studies"], opened["opened"]) == (1, [{"trust": "BBB", "studies": 1}])
    assert opened["expires_at"] > time.time()


def test_break_glass_without_an_agreement_is_refused_with_the_reason(world: Region) -> None:
    """AAA and CCC share nothing: the break-glass would open nothing, so it is refused (no
    security alert), and the refusal is on record as a refused break-glass."""
    staff = world.staff["aaa.colleague"]
    answer = world.break_glass(staff, CCC_GLASS)
    assert answer.status_code == 403, answer.text
    assert "no trust with a sharing agreement with yours" in answer.text
    path = f"/dicomweb/studies/{CCC_GLASS.study_uid}/metadata"
    assert world.http(staff).get(path).status_code == 403
    events = world.admin.get("/api/audit", params={"user": staff.username, "limit": 50}).json()
    glass = [e for e in events if e["kind"] == "break-glass"]
    assert [(e["outcome"], e["nhs_number"]) for e in glass] == [("refused", CCC_GLASS.nhs_number)]
    assert "would open nothing" in glass[0]["detail"]["refused"]


def test_break_glass_of_a_patient_held_only_at_the_users_trust_is_refused(world: Region) -> None:
    answer = world.break_glass(world.staff["aaa.colleague"], AAA_UNLINKED)
    assert answer.status_code == 403, answer.text
