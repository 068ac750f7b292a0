"""The reporting API on the live server, on SQLite and PostgreSQL: a radiologist of TEST
finds a partner trust's study on the worklist without seeing its images, claims it (now
QIDO finds it), signs a final report, and the report is in the study as a Basic Text SR
that QIDO-RS lists and WADO-RS returns, under the study's stored patient."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pydicom
import pytest
from pydicom.uid import generate_uid

from tests.peers import dicomweb
from tests.peers.server import RixServer
from tests.peers.synthetic import ct_slice
from tests.routing.index import wait_for

PARTNER = "RPB"
PDF_CLASS = "1.2.840.10008.5.1.4.1.1.104.1"
TEXT = "CT abdomen: no free fluid.\nConclusion: normal."


@dataclass(frozen=True, slots=True, kw_only=True)
class Partner:
    api: httpx.Client  # TEST's radiologist (the server's tester)
    study_uid: str
    clinician: str  # an API token of the partner's clinician, no radiologist
    admin: str  # an API token of a region administrator
    server: RixServer


@pytest.fixture(scope="module")
def partner(rix_server: RixServer) -> Iterator[Partner]:
    server = rix_server
    origin = f"http://127.0.0.1:{server.http_port}"
    tester = server.auth  # TEST's clinician and radiologist
    server.add_user("rpb.admin", "region-admin")
    admin = {"Authorization": f"Bearer {server.create_token('rpb.admin')}"}
    tokens = {}
    with httpx.Client(base_url=origin, headers=admin, timeout=60) as api:
        for path, body in (
            ("/api/trusts", {"code": PARTNER, "name": "Reporting Partner"}),
            ("/api/agreements", {"trust": "TEST", "other": PARTNER}),
            ("/api/users", {"username": "rpb.sender", "roles": ["clinician"], "trust": PARTNER}),
        ):
            answer = api.post(path, json=body)
            assert answer.status_code == 201, answer.text
        for username in ("rpb.sender",):
            answer = api.post(f"/api/users/{username}/tokens", json={})
            tokens[username] = answer.json()["token"]
    token = tokens["rpb.sender"]
    study_uid, series_uid = str(generate_uid()), str(generate_uid())
    files = []
    for n in (1, 2):
        ds = ct_slice(
            patient_id="RPB-1",
            patient_name="Partner^Paula",
            study_uid=study_uid,
            series_uid=series_uid,
            number=n,
        )
        ds.StudyDescription = "CT abdomen"
        files.append(dicomweb.part10(ds))
    sender = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=origin + "/dicomweb", headers=sender, timeout=60) as stow:
        assert dicomweb.stow(stow, files).status_code == 200
    with httpx.Client(base_url=origin, headers=tester, timeout=60) as api:
        yield Partner(
            api=api,
            study_uid=study_uid,
            clinician=token,
            admin=admin["Authorization"].split()[1],
            server=server,
        )


def assert_cross_reference_table_holds(body: bytes) -> None:
    """Each object's offset in the xref table (ISO 32000-1 7.5.4) is where it begins, and
    startxref is where the table does: what a PDF reader seeks by."""
    start = int(body.rsplit(b"startxref", 1)[1].split()[0])
    assert body[start:].startswith(b"xref")
    rows = body[start:].split(b"\n")[2:]
    count = int(body[start:].split(b"\n")[1].split()[1])
    for number, row in enumerate(rows[1:count], start=1):
        offset = int(row.split()[0])
        assert body[offset:].startswith(f"{number} 0 obj".encode()), number


def qido(partner: Partner, path: str, **params: str) -> list[dict[str, object]]:
    answer = partner.api.get("/dicomweb" + path, params=params)
    assert answer.status_code in (200, 204), answer.text
    return [] if answer.status_code == 204 else list(answer.json())


def _listed(partner: Partner) -> dict[str, object]:
    found = partner.api.get("/api/worklist", params={"trust": PARTNER}).json()["studies"]
    [item] = [s for s in found if s["study_uid"] == partner.study_uid]
    return dict(item)


def test_a_partner_may_keep_its_patients_unnamed_on_the_worklist_until_a_claim(
    partner: Partner,
) -> None:
    uid, api = partner.study_uid, partner.api
    assert _listed(partner)["patient_name"] == "Partner^Paula"  # the default: named
    partner.server.rix("agreement", "add", "TEST", PARTNER, "--hide-names-before-claim")

    item = _listed(partner)
    assert item["names_hidden"] is True
    assert (item["patient_name"], item["patient"], item["nhs_number"]) == ("", "", "")
    page = api.get("/worklist", params={"trust": PARTNER})
    assert page.status_code == 200 and "Named when claimed" in page.text
    assert "PARTNER, Paula" not in page.text and '"ids">RPB-1' not in page.text

    assert api.post(f"/api/worklist/{uid}/claim").status_code == 200
    mine = _listed(partner)
    assert (mine["names_hidden"], mine["patient_name"]) == (False, "Partner^Paula")
    assert "PARTNER, Paula" in api.get("/worklist", params={"trust": PARTNER}).text
    assert api.delete(f"/api/worklist/{uid}/claim").status_code == 200

    admin = {"Authorization": f"Bearer {partner.admin}"}
    shown = {"trust": "TEST", "other": PARTNER, "names_before_claim": True}
    answer = api.post("/api/agreements", json=shown, headers=admin)
    assert (answer.status_code, answer.json()["added"]) == (201, False)
    agreements = api.get("/api/trusts").json()["agreements"]
    [agreement] = [a for a in agreements if PARTNER in a["trusts"]]
    assert agreement["names_before_claim"] is True
    assert _listed(partner)["patient_name"] == "Partner^Paula"


def test_a_partners_study_is_claimed_reported_and_its_sr_stored_in_the_study(
    partner: Partner,
) -> None:
    uid, api = partner.study_uid, partner.api
    listed = api.get("/api/worklist", params={"trust": PARTNER}).json()["studies"]
    assert [s["study_uid"] for s in listed] == [uid]
    assert (listed[0]["status"], listed[0]["priority"]) == ("unreported", "outpatient")
    assert qido(partner, "/studies", StudyInstanceUID=uid) == []  # listed is not opened

    claimed = api.post(f"/api/worklist/{uid}/claim")
    assert claimed.status_code == 200, claimed.text
    assert len(qido(partner, "/studies", StudyInstanceUID=uid)) == 1

    signed = api.post(f"/api/reports/{uid}", json={"action": "final", "text": TEXT})
    assert signed.status_code == 201, signed.text
    sr_uid = signed.json()["sr_instance_uid"]

    reports = wait_for(
        "the SR in the study", lambda: qido(partner, f"/studies/{uid}/series", Modality="SR")
    )
    series_uid = reports[0]["0020000E"]["Value"][0]  # type: ignore[index]
    answer = api.get(
        f"/dicomweb/studies/{uid}/series/{series_uid}/instances/{sr_uid}",
        headers={"Accept": 'multipart/related; type="application/dicom"'},
    )
    assert answer.status_code == 200, answer.text
    [part] = dicomweb.parse_multipart(answer.headers["content-type"], answer.content)
    sr = pydicom.dcmread(io.BytesIO(part.body))
    assert (sr.StudyInstanceUID, sr.PatientID, sr.IssuerOfPatientID) == (uid, "RPB-1", PARTNER)
    assert (sr.Modality, sr.VerificationFlag) == ("SR", "VERIFIED")
    assert sr.ContentSequence[0].TextValue == TEXT

    # and as an Encapsulated PDF of the same text (report_pdf, on by default)
    documents = wait_for(
        "the PDF in the study", lambda: qido(partner, f"/studies/{uid}/series", Modality="DOC")
    )
    pdf_series = documents[0]["0020000E"]["Value"][0]  # type: ignore[index]
    [found] = qido(partner, f"/studies/{uid}/series/{pdf_series}/instances")
    pdf_uid = found["00080018"]["Value"][0]  # type: ignore[index]
    answer = api.get(
        f"/dicomweb/studies/{uid}/series/{pdf_series}/instances/{pdf_uid}",
        headers={"Accept": 'multipart/related; type="application/dicom"'},
    )
    [part] = dicomweb.parse_multipart(answer.headers["content-type"], answer.content)
    doc = pydicom.dcmread(io.BytesIO(part.body))
    assert (doc.SOPClassUID, doc.MIMETypeOfEncapsulatedDocument) == (PDF_CLASS, "application/pdf")
    assert (doc.PatientID, doc.StudyInstanceUID) == ("RPB-1", uid)
    body = bytes(doc.EncapsulatedDocument)[: doc.EncapsulatedDocumentLength]
    assert body.startswith(b"%PDF-1.4") and body.endswith(b"%%EOF\n")
    assert_cross_reference_table_holds(body)
    for line in TEXT.splitlines():
        assert b"(" + line.encode() + b") Tj" in body

    # signing gave the claim back; the author still sees what they reported
    assert api.get("/api/worklist", params={"trust": PARTNER}).json()["studies"] == []
    assert len(qido(partner, "/studies", StudyInstanceUID=uid)) == 1
    versions = api.get(f"/api/reports/{uid}").json()["versions"]
    assert [(v["status"], v["text"]) for v in versions] == [("final", TEXT)]


def test_a_claim_by_someone_without_the_role_is_refused(partner: Partner) -> None:
    token = partner.clinician
    answer = partner.api.post(
        f"/api/worklist/{partner.study_uid}/claim", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 403, answer.text
    assert partner.api.get("/api/worklist", params={"status": "lost"}).status_code == 409
