"""The audit trail: one event per action, naming who did what to whose images, in a hash
chain that shows any edit or deletion (``rix audit verify``).

One event per action as the DICOM audit messages count them (PS3.15 A.5.3): a query, a
retrieve or view of a study, the instances one request or association stored of a study
(A.5.3.7 "DICOM Instances Transferred" is per study), a sign-in, a break-glass, an
administrative change. Each test notes the newest event, acts once through a real peer,
and reads what was added through the API as an auditor (whose own searches are set aside).
"""

from __future__ import annotations

import getpass
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from sqlalchemy import Engine, create_engine, delete, insert, select, update

from rix.config import Settings
from rix.index.schema import audit_events
from tests.conftest import new_server
from tests.peers import dicomweb, postgres, scu
from tests.peers.server import RixServer
from tests.peers.synthetic import CT_IMAGE_STORAGE, ct_slice

PASSWORD = "correct horse battery staple"
WORKSTATION = "RIXTEST"  # the calling AE of tests/peers/scu.py, registered to TEST
AUDITOR = "auditor"
WHO = ("kind", "outcome", "actor", "trust", "patient", "study_uid")


def images(patient_id: str, count: int, *, studies: int = 1) -> list[Dataset]:
    """``count`` CT slices in each of ``studies`` new studies of one patient."""
    out = []
    for _ in range(studies):
        study_uid, series_uid = generate_uid(), generate_uid()
        out += [
            ct_slice(
                patient_id=patient_id,
                patient_name="Audit^Patient",
                study_uid=study_uid,
                series_uid=series_uid,
                number=n,
                size=8,
            )
            for n in range(1, count + 1)
        ]
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Trail:
    """Trusts TEST and OTHER; ``tester`` (clinician of TEST, with a password) stored study
    ``study_uid`` of TEST/AUDIT-1; ``outsider`` is a clinician of OTHER, who stored
    OTHER/AUDIT-O; the workstation and CAPTURE are TEST's AEs."""

    server: RixServer
    tester: httpx.Client  # at the site root
    tester_dicomweb: httpx.Client
    outsider_dicomweb: httpx.Client
    auditor: httpx.Client
    anonymous: httpx.Client
    capture: scu.CaptureSCP
    study_uid: str

    def stow(self, datasets: list[Dataset]) -> None:
        answer = dicomweb.stow(self.tester_dicomweb, [dicomweb.part10(ds) for ds in datasets])
        assert answer.status_code == 200, answer.text

    def newest(self) -> int:
        """The id of the newest event now."""
        found = self.search(limit="1")
        return int(found[0]["id"]) if found else 0

    def search(self, **params: str) -> list[dict[str, Any]]:
        answer = self.auditor.get("/api/audit", params=params)
        assert answer.status_code == 200, answer.text
        events: list[dict[str, Any]] = answer.json()
        return events

    def since(self, mark: int, *, at_least: int = 0, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Events after ``mark``, oldest first, but the auditor's own searches; waits for
        ``at_least`` of them (an association's store event is written at its release)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [
                e
                for e in reversed(self.search(limit="500"))
                if e["id"] > mark and e["actor"] != AUDITOR
            ]
            if len(found) >= at_least or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def engine(self) -> Engine:
        """The index database itself, as someone with access to its files would reach it."""
        settings = Settings(data=self.server.data, database_url=self.server.database_url)
        return create_engine(settings.index_url)


def who(events: list[dict[str, Any]], fields: tuple[str, ...] = WHO) -> list[dict[str, str]]:
    return [{name: e[name] for name in fields} for e in events]


def _token(admin: httpx.Client, username: str, roles: list[str], trust: str = "") -> str:
    user = {"username": username, "roles": roles, "trust": trust, "password": PASSWORD}
    assert admin.post("/api/users", json=user).is_success
    answer = admin.post(f"/api/users/{username}/tokens", json={})
    assert answer.status_code == 201
    return str(answer.json()["token"])


@pytest.fixture(scope="module")
def trail(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Trail]:
    url = postgres.create_database(migrated=True) if backend == "postgresql" else ""
    server = new_server(tmp_path_factory.mktemp("audit"), database_url=url)
    origin = f"http://127.0.0.1:{server.http_port}"
    try:
        server.start()
        server.add_user("root", "region-admin")
        root = server.create_token("root")
        with ExitStack() as stack:

            def client(token: str = "", path: str = "") -> httpx.Client:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                c = httpx.Client(base_url=origin + path, headers=headers, timeout=30)
                return stack.enter_context(c)

            capture = stack.enter_context(scu.CaptureSCP("CAPTURE"))
            admin = client(root)
            for code in ("TEST", "OTHER"):
                assert admin.post("/api/trusts", json={"code": code, "name": code}).is_success
            for title, port in ((WORKSTATION, 104), ("CAPTURE", capture.port)):
                peer = {"title": title, "host": "127.0.0.1", "port": port, "trust": "TEST"}
                assert admin.post("/api/aes", json=peer).is_success
            tester = _token(admin, "tester", ["clinician", "radiologist"], "TEST")
            outsider = _token(admin, "outsider", ["clinician"], "OTHER")
            tester_dicomweb = client(tester, "/dicomweb")
            outsider_dicomweb = client(outsider, "/dicomweb")
            study = images("AUDIT-1", 2)
            for uploader, datasets in (
                (tester_dicomweb, study),
                (outsider_dicomweb, images("AUDIT-O", 1)),
            ):
                assert dicomweb.stow(uploader, map(dicomweb.part10, datasets)).status_code == 200
            yield Trail(
                server=server,
                tester=client(tester),
                tester_dicomweb=tester_dicomweb,
                outsider_dicomweb=outsider_dicomweb,
                auditor=client(_token(admin, AUDITOR, ["auditor"])),
                anonymous=client(),
                capture=capture,
                study_uid=study[0].StudyInstanceUID,
            )
    finally:
        server.stop(wait=False)
        if url:
            postgres.drop_database(url)


# --- DICOMweb ---


def test_qido_search_is_one_query_event(trail: Trail) -> None:
    mark = trail.newest()
    answer = trail.tester_dicomweb.get("/studies", params={"PatientID": "AUDIT-1"})
    assert answer.status_code == 200
    [event] = trail.since(mark)
    assert who([event]) == [
        {
            "kind": "query",
            "outcome": "success",
            "actor": "tester",
            "trust": "TEST",
            "patient": "TEST/AUDIT-1",
            "study_uid": trail.study_uid,
        }
    ]
    assert event["detail"]["keys"] == {"PatientID": "AUDIT-1"}
    assert event["detail"]["matches"] == 1


def test_wado_retrieve_of_a_study_is_one_retrieve_event(trail: Trail) -> None:
    mark = trail.newest()
    answer = trail.tester_dicomweb.get(
        f"/studies/{trail.study_uid}",
        headers={"Accept": 'multipart/related; type="application/dicom"'},
    )
    assert answer.status_code == 200
    assert who(trail.since(mark)) == [
        {
            "kind": "retrieve",
            "outcome": "success",
            "actor": "tester",
            "trust": "TEST",
            "patient": "TEST/AUDIT-1",
            "study_uid": trail.study_uid,
        }
    ]


def test_metadata_read_twice_is_one_view_event(trail: Trail) -> None:
    viewed = images("AUDIT-V", 1)
    trail.stow(viewed)
    study_uid = viewed[0].StudyInstanceUID
    mark = trail.newest()
    for _ in range(2):
        assert trail.tester_dicomweb.get(f"/studies/{study_uid}/metadata").status_code == 200
    assert who(trail.since(mark)) == [
        {
            "kind": "view",
            "outcome": "success",
            "actor": "tester",
            "trust": "TEST",
            "patient": "TEST/AUDIT-V",
            "study_uid": study_uid,
        }
    ]


def test_wado_refused_to_a_user_of_another_trust_is_one_refused_event(trail: Trail) -> None:
    mark = trail.newest()
    assert trail.outsider_dicomweb.get(f"/studies/{trail.study_uid}").status_code == 403
    fields = ("kind", "outcome", "actor", "trust", "study_uid")
    assert who(trail.since(mark), fields) == [
        {
            "kind": "retrieve",
            "outcome": "refused",
            "actor": "outsider",
            "trust": "OTHER",
            "study_uid": trail.study_uid,
        }
    ]


def test_refused_retrieve_is_found_by_searching_for_the_patient(trail: Trail) -> None:
    mark = trail.newest()
    assert trail.outsider_dicomweb.get(f"/studies/{trail.study_uid}").status_code == 403
    refused = [e for e in trail.search(patient="TEST/AUDIT-1") if e["id"] > mark]
    assert [(e["actor"], e["outcome"]) for e in refused] == [("outsider", "refused")]


def test_stow_of_two_instances_of_one_study_is_one_store_event(trail: Trail) -> None:
    stored = images("AUDIT-2", 2)
    mark = trail.newest()
    trail.stow(stored)
    [event] = trail.since(mark)
    assert who([event]) == [
        {
            "kind": "store",
            "outcome": "success",
            "actor": "tester",
            "trust": "TEST",
            "patient": "TEST/AUDIT-2",
            "study_uid": stored[0].StudyInstanceUID,
        }
    ]
    assert event["detail"] == {"instances": 2}


# --- DIMSE ---


def test_cstore_of_three_instances_on_one_association_is_one_store_event(trail: Trail) -> None:
    stored = images("AUDIT-3", 3)
    mark = trail.newest()
    assert scu.store_datasets(trail.server.dicom_port, stored) == [0x0000] * 3
    [event] = trail.since(mark, at_least=1)
    assert who([event]) == [
        {
            "kind": "store",
            "outcome": "success",
            "actor": WORKSTATION,
            "trust": "TEST",
            "patient": "TEST/AUDIT-3",
            "study_uid": stored[0].StudyInstanceUID,
        }
    ]
    assert event["detail"] == {"instances": 3}


def test_cfind_is_one_query_event(trail: Trail) -> None:
    mark = trail.newest()
    query = scu.query("STUDY", PatientID="AUDIT-1", StudyInstanceUID="")
    assert len(scu.find(trail.server.dicom_port, query).matches) == 1
    [event] = trail.since(mark)
    assert who([event]) == [
        {
            "kind": "query",
            "outcome": "success",
            "actor": WORKSTATION,
            "trust": "TEST",
            "patient": "TEST/AUDIT-1",
            "study_uid": trail.study_uid,
        }
    ]
    assert event["detail"]["matches"] == 1


def test_cmove_is_one_retrieve_event_per_study(trail: Trail) -> None:
    moved = images("AUDIT-M", 1, studies=2)
    trail.stow(moved)
    mark = trail.newest()
    query = scu.query("PATIENT", PatientID="AUDIT-M")
    result = scu.move(trail.server.dicom_port, query, "CAPTURE", model=scu.PATIENT_ROOT_MOVE)
    assert (result.status, result.completed) == (0x0000, 2)
    events = trail.since(mark)
    assert sorted(who(events), key=lambda e: e["study_uid"]) == sorted(
        (
            {
                "kind": "retrieve",
                "outcome": "success",
                "actor": WORKSTATION,
                "trust": "TEST",
                "patient": "TEST/AUDIT-M",
                "study_uid": ds.StudyInstanceUID,
            }
            for ds in moved
        ),
        key=lambda e: e["study_uid"],
    )
    assert [e["detail"] for e in events] == [{"destination": "CAPTURE", "instances": 1}] * 2


def test_cget_is_one_retrieve_event(trail: Trail) -> None:
    mark = trail.newest()
    query = scu.query("STUDY", StudyInstanceUID=trail.study_uid)
    storage = [(CT_IMAGE_STORAGE, ExplicitVRLittleEndian)]
    result = scu.get(trail.server.dicom_port, query, storage)
    assert (result.status, len(result.stored)) == (0x0000, 2)
    [event] = trail.since(mark)
    assert who([event]) == [
        {
            "kind": "retrieve",
            "outcome": "success",
            "actor": WORKSTATION,
            "trust": "TEST",
            "patient": "TEST/AUDIT-1",
            "study_uid": trail.study_uid,
        }
    ]
    assert event["detail"] == {"destination": WORKSTATION, "instances": 2}


# --- "who accessed this patient's images": every door names the person ---

PERSON = "9434765986"  # one person, a record at TEST and one at OTHER (no agreement)


@dataclass(frozen=True, slots=True, kw_only=True)
class Person:
    at_test: str  # the study of TEST/AUDIT-P
    at_other: str  # the study of OTHER/AUDIT-PO


def with_nhs_number(datasets: list[Dataset], nhs_number: str) -> list[Dataset]:
    for ds in datasets:
        item = Dataset()
        item.PatientID, item.IssuerOfPatientID = nhs_number, "NHS"
        ds.OtherPatientIDsSequence = [item]
    return datasets


@pytest.fixture(scope="module")
def person(trail: Trail) -> Person:
    at_test = with_nhs_number(images("AUDIT-P", 1), PERSON)
    at_other = with_nhs_number(images("AUDIT-PO", 1), PERSON)
    trail.stow(at_test)
    answer = dicomweb.stow(trail.outsider_dicomweb, [dicomweb.part10(ds) for ds in at_other])
    assert answer.status_code == 200, answer.text
    return Person(at_test=at_test[0].StudyInstanceUID, at_other=at_other[0].StudyInstanceUID)


def by_nhs_number(trail: Trail, mark: int, at_least: int) -> list[tuple[str, str, str, str]]:
    """(kind, outcome, actor, study) of the events after ``mark`` that a search by the
    person's NHS number finds, oldest first; waits for ``at_least`` (queries are audited in
    the next group commit)."""
    deadline = time.monotonic() + 10
    while True:
        found = [
            (e["kind"], e["outcome"], e["actor"], e["study_uid"])
            for e in reversed(trail.search(nhs_number=PERSON))
            if e["id"] > mark and e["actor"] != AUDITOR
        ]
        if len(found) >= at_least or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_a_qido_search_is_found_by_the_patients_nhs_number(trail: Trail, person: Person) -> None:
    mark = trail.newest()
    answer = trail.tester_dicomweb.get("/studies", params={"PatientID": "AUDIT-P"})
    assert answer.status_code == 200
    assert by_nhs_number(trail, mark, 1) == [("query", "success", "tester", person.at_test)]


def test_a_cfind_is_found_by_the_patients_nhs_number(trail: Trail, person: Person) -> None:
    mark = trail.newest()
    query = scu.query("STUDY", PatientID="AUDIT-P", StudyInstanceUID="")
    assert len(scu.find(trail.server.dicom_port, query).matches) == 1
    assert by_nhs_number(trail, mark, 1) == [("query", "success", WORKSTATION, person.at_test)]


def test_a_query_naming_two_patients_is_an_event_for_each(trail: Trail, person: Person) -> None:
    stored = with_nhs_number(images("AUDIT-Q", 1), "9434765994")
    trail.stow(stored)
    mark = trail.newest()
    both = f"{person.at_test}\\{stored[0].StudyInstanceUID}"  # a list of UIDs (PS3.4 C.2.2.2.2)
    query = scu.query("STUDY", StudyInstanceUID=both, PatientID="")
    assert len(scu.find(trail.server.dicom_port, query).matches) == 2
    assert by_nhs_number(trail, mark, 1) == [("query", "success", WORKSTATION, person.at_test)]
    other = [e for e in trail.search(nhs_number="9434765994") if e["id"] > mark]
    assert [(e["kind"], e["patient"], e["detail"]["patients"]) for e in other] == [
        ("query", "TEST/AUDIT-Q", 2)
    ]


def test_wado_reads_allowed_and_refused_are_found_by_the_patients_nhs_number(
    trail: Trail, person: Person
) -> None:
    mark = trail.newest()
    dicom = {"Accept": 'multipart/related; type="application/dicom"'}
    assert trail.tester_dicomweb.get(f"/studies/{person.at_test}", headers=dicom).is_success
    assert trail.tester_dicomweb.get(f"/studies/{person.at_other}").status_code == 403
    uri = {
        "requestType": "WADO",
        "studyUID": person.at_other,
        "seriesUID": "1.2",
        "objectUID": "1.2",
    }
    assert trail.tester.get("/wado", params=uri).status_code == 403
    assert by_nhs_number(trail, mark, 3) == [
        ("retrieve", "success", "tester", person.at_test),
        ("retrieve", "refused", "tester", person.at_other),
        ("retrieve", "refused", "tester", person.at_other),
    ]


@pytest.mark.parametrize("service", ["C-MOVE", "C-GET"])
def test_dimse_retrieves_allowed_and_refused_are_found_by_the_patients_nhs_number(
    trail: Trail, person: Person, service: str
) -> None:
    mark = trail.newest()
    statuses = []
    for study_uid in (person.at_test, person.at_other):
        query = scu.query("STUDY", StudyInstanceUID=study_uid)
        if service == "C-MOVE":
            result = scu.move(trail.server.dicom_port, query, "CAPTURE")
        else:
            storage = [(CT_IMAGE_STORAGE, ExplicitVRLittleEndian)]
            result = scu.get(trail.server.dicom_port, query, storage)
        statuses.append(result.status)
    assert statuses == [0x0000, 0x0124]
    assert by_nhs_number(trail, mark, 2) == [
        ("retrieve", "success", WORKSTATION, person.at_test),
        ("retrieve", "refused", WORKSTATION, person.at_other),
    ]


# --- signing in, break-glass, administration ---


def test_sign_in_is_one_login_event(trail: Trail) -> None:
    mark = trail.newest()
    answer = trail.anonymous.post("/login", data={"username": "tester", "password": PASSWORD})
    assert answer.status_code == 303
    [event] = trail.since(mark)
    assert who([event]) == [
        {
            "kind": "login",
            "outcome": "success",
            "actor": "tester",
            "trust": "TEST",
            "patient": "",
            "study_uid": "",
        }
    ]
    assert event["detail"] == {"via": "password"}
    trail.anonymous.cookies.clear()


def test_failed_sign_in_is_one_refused_login_event(trail: Trail) -> None:
    mark = trail.newest()
    answer = trail.anonymous.post("/login", data={"username": "tester", "password": "guess"})
    assert answer.status_code == 401
    assert who(trail.since(mark)) == [
        {
            "kind": "login",
            "outcome": "refused",
            "actor": "tester",
            "trust": "",
            "patient": "",
            "study_uid": "",
        }
    ]


def test_unknown_bearer_token_is_one_refused_login_event(trail: Trail) -> None:
    mark = trail.newest()
    forged = {"Authorization": "Bearer rix_" + "A" * 43}
    assert trail.anonymous.get("/dicomweb/studies", headers=forged).status_code == 401
    [event] = trail.since(mark)
    assert (event["kind"], event["outcome"], event["actor"]) == ("login", "refused", "")
    assert event["detail"]["via"] == "bearer"
    assert "rix_" not in str(event["detail"])  # never the token itself


def test_break_glass_is_one_break_glass_event(trail: Trail) -> None:
    """TEST and OTHER share nothing: the break-glass would open nothing and is refused,
    on record as one refused break-glass with the reason given and why it was refused."""
    mark = trail.newest()
    reason = "unconscious patient in ED, prior imaging needed"
    declared = trail.tester.post(
        "/api/break-glass", json={"patient": "OTHER/AUDIT-O", "reason": reason}
    )
    assert declared.status_code == 403, declared.text
    [event] = trail.since(mark)
    assert who([event]) == [
        {
            "kind": "break-glass",
            "outcome": "refused",
            "actor": "tester",
            "trust": "TEST",
            "patient": "OTHER/AUDIT-O",
            "study_uid": "",
        }
    ]
    assert event["detail"] == {
        "action": "break-glass",
        "reason": reason,
        "refused": declared.json()["error"],
    }


def test_break_glass_on_a_record_is_found_by_the_patients_nhs_number(trail: Trail) -> None:
    [ds] = images("AUDIT-N", 1)
    nhs = Dataset()
    nhs.PatientID, nhs.IssuerOfPatientID = "9434765870", "NHS"
    ds.OtherPatientIDsSequence = [nhs]
    assert dicomweb.stow(trail.outsider_dicomweb, [dicomweb.part10(ds)]).status_code == 200
    reason = "unconscious patient in ED, prior imaging needed"
    declared = trail.tester.post(
        "/api/break-glass", json={"patient": "OTHER/AUDIT-N", "reason": reason}
    )
    assert declared.status_code == 403, declared.text  # refused: TEST and OTHER share nothing
    found = trail.search(nhs_number="9434765870")
    assert [e["actor"] for e in found if e["kind"] == "break-glass"] == ["tester"]


def test_admin_change_on_the_command_line_is_one_admin_event(trail: Trail) -> None:
    mark = trail.newest()
    trail.server.rix("trust", "site", "TEST", "MAIN", "--name", "Main Hospital")
    [event] = trail.since(mark)
    assert (event["kind"], event["outcome"], event["actor"], event["source"]) == (
        "admin",
        "success",
        f"cli:{getpass.getuser()}",
        "cli",
    )
    assert event["detail"] == {"action": "site add", "trust": "TEST", "site": "MAIN"}


def test_audit_search_is_itself_one_query_event(trail: Trail) -> None:
    mark = trail.newest()
    trail.search(patient="TEST/AUDIT-1")
    searches = [
        e
        for e in trail.search(limit="50")
        if e["id"] > mark and e["detail"].get("audit_search", {}).get("patient") == "TEST/AUDIT-1"
    ]
    assert who(searches) == [
        {
            "kind": "query",
            "outcome": "success",
            "actor": AUDITOR,
            "trust": "",
            "patient": "TEST/AUDIT-1",
            "study_uid": "",
        }
    ]


# --- the hash chain ---


def verify(trail: Trail) -> tuple[int, str]:
    result = trail.server.rix("audit", "verify", check=False)
    return result.returncode, " ".join((result.stdout + result.stderr).split())


def test_untouched_trail_verifies(trail: Trail) -> None:
    assert verify(trail) == (0, "audit chain intact")


def test_edited_event_is_named_by_audit_verify(trail: Trail) -> None:
    [stored] = [e for e in trail.search(study=trail.study_uid) if e["kind"] == "store"]
    engine = trail.engine()
    event = audit_events.c.id == stored["id"]
    with engine.begin() as conn:
        original = conn.execute(select(audit_events.c.detail).where(event)).scalar_one()
        conn.execute(update(audit_events).where(event).values(detail='{"instances": 1}'))
    try:
        assert verify(trail) == (1, f"event {stored['id']}: event was altered")
    finally:
        with engine.begin() as conn:
            conn.execute(update(audit_events).where(event).values(detail=original))
        engine.dispose()


def test_deleted_event_is_detected_by_audit_verify(trail: Trail) -> None:
    [stored] = [e for e in trail.search(study=trail.study_uid) if e["kind"] == "store"]
    engine = trail.engine()
    with engine.begin() as conn:
        row = conn.execute(select(audit_events).where(audit_events.c.id == stored["id"])).one()
        following = conn.execute(
            select(audit_events.c.id).where(audit_events.c.id > row.id).order_by("id").limit(1)
        ).scalar_one()
        conn.execute(delete(audit_events).where(audit_events.c.id == row.id))
    try:
        assert verify(trail) == (1, f"event {following}: previous event missing")
    finally:
        with engine.begin() as conn:
            conn.execute(insert(audit_events).values(**row._mapping))
        engine.dispose()
