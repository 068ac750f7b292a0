"""Outside media from the browser (``/api/imports``): uploaded in resumable chunks, scanned
for the outside patients on them, reconciled by a clerk to records of their own trust,
and stored through the one ingest path, bytes unchanged, indexed under the local records;
on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import hashlib
import io
import socket
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from rix.dataset import parsing
from tests.peers.objects import instance_key, object_keys, stored
from tests.peers.synthetic import ct_slice
from tests.region.region import Patient, Region, Staff, issuer_of, region

CHUNK = 40_000
NHS_A = "9434765919"
LOCAL_A = Patient(
    key="import-local-a", trust="EMH", patient_id="EMH-7001", nhs_number=NHS_A,
    birth_date="19800202", sex="F",
)  # fmt: skip
LOCAL_B = Patient(
    key="import-local-b", trust="EMH", patient_id="EMH-7002", birth_date="19900303", sex="M"
)
AT_NGH = Patient(key="import-ngh-c", trust="NGH", patient_id="NGH-7003")


@pytest.fixture(scope="module")
def world(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Region]:
    with region(tmp_path_factory.mktemp("imports"), backend, ("EMH", "NGH")) as r:
        r.add_staff("emh.clerk", "radiographer", "EMH")
        r.add_staff("emh.colleague", "clinician", "EMH")
        r.add_staff("emh.auditor", "auditor", "EMH")
        r.add_staff("ngh.clinician", "clinician", "NGH")
        r.add_staff("region.auditor", "auditor", None)
        r.send([LOCAL_A, LOCAL_B, AT_NGH])
        yield r


def clerk(world: Region) -> httpx.Client:
    return world.http(world.staff["emh.clerk"])


def as_user(world: Region, username: str) -> httpx.Client:
    return world.http(world.staff[username])


# --- outside media ---


def part10(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def outside_study(
    patient_id: str, name: str, count: int, *, issuer: str = "", size: int = 64
) -> list[bytes]:
    """One outside study of ``count`` CT slices, as Part 10 files from another hospital."""
    study_uid, series_uid = str(generate_uid()), str(generate_uid())
    files = []
    for number in range(1, count + 1):
        ds = ct_slice(
            patient_id=patient_id,
            patient_name=name,
            study_uid=study_uid,
            series_uid=series_uid,
            number=number,
            size=size,
        )
        ds.PatientBirthDate = "19551111"
        if issuer:
            ds.IssuerOfPatientID = issuer
        files.append(part10(ds))
    return files


def zipped(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


def dataset_bytes(data: bytes) -> bytes:
    return data[parsing.split_file(data).dataset_offset :]


def uids(data: bytes) -> tuple[str, str, str]:
    ds = parsing.read_header(dataset_bytes(data), parsing.split_file(data).transfer_syntax)
    return (
        str(ds.dataset.StudyInstanceUID),
        str(ds.dataset.SeriesInstanceUID),
        str(ds.dataset.SOPInstanceUID),
    )


# --- the browser's side ---


def begin(client: httpx.Client, files: dict[str, bytes]) -> str:
    declared = [{"name": name, "size": len(data)} for name, data in files.items()]
    answer = client.post("/api/imports", json={"files": declared})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def put(client: httpx.Client, upload_id: str, number: int, offset: int, data: bytes) -> Any:
    return client.put(
        f"/api/imports/{upload_id}/files/{number}",
        params={"offset": offset, "sha256": hashlib.sha256(data).hexdigest()},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )


def send(client: httpx.Client, upload_id: str, number: int, data: bytes, start: int = 0) -> None:
    for offset in range(start, len(data), CHUNK):
        answer = put(client, upload_id, number, offset, data[offset : offset + CHUNK])
        assert answer.status_code == 200, answer.text
    assert client.get(f"/api/imports/{upload_id}").json()["files"][number]["received"] == len(data)


def upload(client: httpx.Client, files: dict[str, bytes]) -> str:
    upload_id = begin(client, files)
    for number, data in enumerate(files.values()):
        send(client, upload_id, number, data)
    return upload_id


def scan(client: httpx.Client, upload_id: str) -> dict[str, Any]:
    answer = client.post(f"/api/imports/{upload_id}/scan")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def by_id(found: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["patient_id"]: p for p in found["patients"]}


def store(client: httpx.Client, upload_id: str, choices: dict[str, str]) -> dict[str, Any]:
    answer = client.post(f"/api/imports/{upload_id}/store", json={"reconcile": choices})
    assert answer.status_code == 202, answer.text
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        status = client.get(f"/api/imports/{upload_id}").json()
        if status["state"] == "done":
            return dict(status)
        assert status["job"] is None or status["job"]["state"] in ("pending", "running"), status
        time.sleep(0.2)
    raise AssertionError(f"the import did not finish: {status}")


def qido(client: httpx.Client, **keys: str) -> list[str]:
    answer = client.get("/dicomweb/studies", params=keys)
    assert answer.status_code in (200, 204), answer.text
    if answer.status_code == 204:
        return []
    return sorted(s["0020000D"]["Value"][0] for s in answer.json())


def truncated_put(world: Region, staff: Staff, path: str, declared: int, sent: bytes) -> None:
    """A chunk whose connection drops part-way: Content-Length says more than arrives."""
    head = (
        f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {staff.token}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", world.server.http_port), timeout=10) as s:
        s.sendall(head.encode() + sent)
        s.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            s.recv(4096)


# --- the tests ---


def test_a_zip_of_two_outside_patients_is_stored_under_the_records_the_clerk_chose(
    world: Region,
) -> None:
    """The first outside patient carries EMH-7001 without an issuer, the number of another
    EMH patient: reconciled to EMH-7002, it is never merged into EMH-7001."""
    one = outside_study("EMH-7001", "Outside^One", 3)
    two = outside_study("OUT-2", "Outside^Two", 2, issuer="ELSEWHERE")
    media = {f"IMG/{n:04d}": data for n, data in enumerate(one + two)}
    client = clerk(world)
    upload_id = upload(client, {"cd.zip": zipped(media)})

    found = scan(client, upload_id)
    outside = by_id(found)
    assert set(outside) == {"EMH-7001", "OUT-2"}
    assert outside["OUT-2"]["issuer"] == "ELSEWHERE"
    assert outside["EMH-7001"]["issuer"] == ""
    assert outside["EMH-7001"]["name"] == "Outside^One"
    [study_one] = outside["EMH-7001"]["studies"]
    assert (study_one["instances"], study_one["modalities"]) == (3, ["CT"])
    assert found["instances"] == 5 and found["refused"] == []

    record_a, record_b = f"{issuer_of('EMH')}/EMH-7001", f"{issuer_of('EMH')}/EMH-7002"
    summary = store(
        client,
        upload_id,
        {outside["EMH-7001"]["key"]: record_b, outside["OUT-2"]["key"]: record_a},
    )["summary"]
    assert (summary["stored"], summary["already_present"], summary["refused"]) == (5, 0, [])

    study_uid_one, study_uid_two = uids(one[0])[0], uids(two[0])[0]
    assert study_uid_one in qido(client, PatientID="EMH-7002")
    assert study_uid_one not in qido(client, PatientID="EMH-7001")
    assert study_uid_two in qido(client, PatientID="EMH-7001", IssuerOfPatientID="EMH-MRN")
    assert LOCAL_A.study_uid in qido(client, PatientID="EMH-7001")
    for data in one + two:  # the bytes stored are the bytes received
        assert stored(world.server.data, instance_key(*uids(data)))[1] == dataset_bytes(data)


def test_metadata_shows_the_local_record_and_keeps_the_outside_id(world: Region) -> None:
    one = outside_study("OUT-META", "Outside^Meta", 2)
    client = clerk(world)
    upload_id = upload(client, {f"f{n}": d for n, d in enumerate(one)})
    outside = by_id(scan(client, upload_id))["OUT-META"]
    store(client, upload_id, {outside["key"]: f"{issuer_of('EMH')}/EMH-7002"})

    study_uid, series_uid, _sop = uids(one[0])
    answer = client.get(f"/dicomweb/studies/{study_uid}/series/{series_uid}/metadata")
    assert answer.status_code == 200, answer.text
    for document in answer.json():
        assert document["00100020"]["Value"] == ["EMH-7002"]
        assert document["00100021"]["Value"] == [issuer_of("EMH")]
        assert document["00100010"]["Value"][0]["Alphabetic"] == "Import-Local-B^Test"
        others = [item["00100020"]["Value"][0] for item in document["00101002"]["Value"]]
        assert "OUT-META" in others
    # and C-FIND / QIDO by the outside ID finds the local record it was reconciled to
    assert study_uid in qido(client, OtherPatientIDs="OUT-META")


def test_an_interrupted_chunk_is_resumed_where_the_bytes_stopped(world: Region) -> None:
    [big] = outside_study("OUT-RESUME", "Outside^Resume", 1, size=256)  # 128 KiB of pixels
    client, staff = clerk(world), world.staff["emh.clerk"]
    upload_id = begin(client, {"IM0001": big})
    assert put(client, upload_id, 0, 0, big[: CHUNK // 4]).status_code == 200
    path = f"/api/imports/{upload_id}/files/0?offset={CHUNK // 4}"
    truncated_put(world, staff, path, declared=CHUNK // 4, sent=big[CHUNK // 4 : CHUNK // 3])

    status = client.get(f"/api/imports/{upload_id}").json()
    assert status["files"][0]["received"] == CHUNK // 4  # nothing of the broken chunk kept
    wrong = put(client, upload_id, 0, CHUNK // 2, big[CHUNK // 2 :])
    assert wrong.status_code == 409 and f"resume at {CHUNK // 4}" in wrong.json()["error"]
    send(client, upload_id, 0, big, start=CHUNK // 4)

    outside = by_id(scan(client, upload_id))["OUT-RESUME"]
    summary = store(client, upload_id, {outside["key"]: f"{issuer_of('EMH')}/EMH-7002"})
    assert summary["summary"]["stored"] == 1
    assert stored(world.server.data, instance_key(*uids(big)))[1] == dataset_bytes(big)


def test_the_same_media_again_store_nothing_twice(world: Region) -> None:
    files = {f"f{n}": d for n, d in enumerate(outside_study("OUT-AGAIN", "Outside^Again", 2))}
    client = clerk(world)
    for expected in ((2, 0), (0, 2)):
        upload_id = upload(client, files)
        outside = by_id(scan(client, upload_id))["OUT-AGAIN"]
        summary = store(client, upload_id, {outside["key"]: f"{issuer_of('EMH')}/EMH-7002"})
        assert (summary["summary"]["stored"], summary["summary"]["already_present"]) == expected


def dicomdir() -> bytes:
    meta = parsing.file_meta(
        sop_class_uid="1.2.840.10008.1.3.10",
        sop_instance_uid=str(generate_uid()),
        transfer_syntax="1.2.840.10008.1.2.1",
        source_ae="",
    )
    return meta + b"\x04\x00\x30\x11CS\x02\x00CD"  # File-set ID


def test_bad_media_are_refused_with_reasons_and_nothing_half_stored(world: Region) -> None:
    good, hidden = outside_study("OUT-BAD", "Outside^Bad", 2)
    files = {
        "DICOMDIR": dicomdir(),
        "IMG/IM1": good,
        "notes.txt": b"Discharge letter, not an image\n" * 20,
        "broken.zip": zipped({"IM9": good})[:200],
        "evil.zip": zipped({"../../../etc/cron.d/x": hidden, "ok/IM2": hidden}),
        "short.dcm": good[: len(good) - 500],
    }
    client = clerk(world)
    upload_id = upload(client, files)
    before = object_keys(world.server.data)

    found = scan(client, upload_id)
    refused = {r["file"]: r["reason"] for r in found["refused"]}
    assert "not a DICOM file" in refused["notes.txt"]
    assert "broken zip" in refused["broken.zip"]
    assert "unsafe path" in refused["evil.zip!../../../etc/cron.d/x"]
    assert "truncated" in refused["short.dcm"]
    assert [s["file"] for s in found["skipped"]] == ["DICOMDIR"]
    assert found["instances"] == 2

    outside = by_id(found)["OUT-BAD"]
    summary = store(client, upload_id, {outside["key"]: f"{issuer_of('EMH')}/EMH-7002"})
    assert summary["summary"]["stored"] == 2
    assert {r["file"] for r in summary["summary"]["refused"]} == set(refused)
    added = object_keys(world.server.data) - before
    assert added == {instance_key(*uids(good)), instance_key(*uids(hidden))}


def test_chunks_that_are_not_what_they_say_are_refused(world: Region) -> None:
    client = clerk(world)
    upload_id = begin(client, {"IM1": b"x" * 100})
    corrupt = client.put(
        f"/api/imports/{upload_id}/files/0",
        params={"offset": 0, "sha256": hashlib.sha256(b"y" * 50).hexdigest()},
        content=b"x" * 50,
    )
    assert corrupt.status_code == 400 and "SHA-256" in corrupt.json()["error"]
    assert put(client, upload_id, 0, 0, b"x" * 101).status_code == 400  # past its size
    assert put(client, upload_id, 1, 0, b"x").status_code == 404  # no such file
    assert put(client, upload_id, 0, 10, b"x").status_code == 409
    not_all = client.post(f"/api/imports/{upload_id}/scan")
    assert not_all.status_code == 409 and "not every file" in not_all.json()["error"]
    assert client.get(f"/api/imports/{upload_id}").json()["received"] == 0
    assert client.delete(f"/api/imports/{upload_id}").status_code == 200
    assert client.get(f"/api/imports/{upload_id}").status_code == 404


def test_only_records_of_the_clerks_own_trust_are_offered_and_accepted(world: Region) -> None:
    client = clerk(world)
    upload_id = upload(client, {"IM1": outside_study("OUT-CHOICE", "Outside^Choice", 1)[0]})
    key = by_id(scan(client, upload_id))["OUT-CHOICE"]["key"]

    def offered(q: str) -> list[str]:
        answer = client.get(f"/api/imports/{upload_id}/candidates", params={"q": q})
        assert answer.status_code == 200, answer.text
        return [c["patient"] for c in answer.json()]

    record_a = f"{issuer_of('EMH')}/EMH-7001"
    assert offered(NHS_A) == [record_a]
    assert offered("943 476 5919") == [record_a]
    assert offered("EMH-7001") == [record_a]
    assert offered("1980-02-02") == [record_a]
    assert offered("import-local-a") == [record_a]
    assert offered("NGH-7003") == []  # another trust's records are never offered

    at_ngh = client.post(
        f"/api/imports/{upload_id}/store",
        json={"reconcile": {key: f"{issuer_of('NGH')}/NGH-7003"}},
    )
    assert at_ngh.status_code == 403, at_ngh.text
    none = client.post(f"/api/imports/{upload_id}/store", json={"reconcile": {}})
    assert none.status_code == 409 and "not reconciled" in none.json()["error"]
    skipped = client.post(f"/api/imports/{upload_id}/store", json={"reconcile": {key: "skip"}})
    assert skipped.status_code == 409 and "nothing to store" in skipped.json()["error"]
    assert client.get(f"/api/imports/{upload_id}").json()["state"] == "scanned"


@pytest.mark.parametrize("username", ["ngh.clinician", "emh.colleague"])
def test_another_users_upload_does_not_exist_for_them(world: Region, username: str) -> None:
    upload_id = begin(clerk(world), {"IM1": b"x" * 10})
    other = as_user(world, username)
    assert other.get(f"/api/imports/{upload_id}").status_code == 404
    assert put(other, upload_id, 0, 0, b"x" * 10).status_code == 404
    assert other.post(f"/api/imports/{upload_id}/scan").status_code == 404
    assert other.get(f"/api/imports/{upload_id}/candidates?q=EMH-7001").status_code == 404
    assert other.post(f"/api/imports/{upload_id}/store", json={"reconcile": {}}).status_code == 404
    assert other.delete(f"/api/imports/{upload_id}").status_code == 404
    assert clerk(world).get(f"/api/imports/{upload_id}").json()["received"] == 0


@pytest.mark.parametrize("username", ["region.auditor", "emh.auditor"])
def test_importing_needs_a_clinical_role_at_a_trust(world: Region, username: str) -> None:
    answer = as_user(world, username).post(
        "/api/imports", json={"files": [{"name": "IM1", "size": 10}]}
    )
    assert answer.status_code == 403, answer.text


def test_an_import_is_audited_as_the_clerks_store_of_the_local_record(world: Region) -> None:
    client = clerk(world)
    one = outside_study("OUT-AUDIT", "Outside^Audit", 2)
    upload_id = upload(client, {"IM1": one[0], "IM2": one[1]})
    key = by_id(scan(client, upload_id))["OUT-AUDIT"]["key"]
    client.get(f"/api/imports/{upload_id}/candidates", params={"q": "EMH-7002"})
    store(client, upload_id, {key: f"{issuer_of('EMH')}/EMH-7002"})

    answer = as_user(world, "region.auditor").get("/api/audit", params={"user": "emh.clerk"})
    assert answer.status_code == 200, answer.text
    events = [e for e in answer.json() if upload_id in str(e["detail"]) or e["kind"] == "store"]
    stores = [e for e in events if e["kind"] == "store" and e["study_uid"] == uids(one[0])[0]]
    assert stores and stores[0]["patient"] == f"{issuer_of('EMH')}/EMH-7002"
    assert stores[0]["trust"] == "EMH"
    kinds = {e["kind"] for e in events if upload_id in str(e["detail"])}
    assert kinds == {"query", "store"}  # the scan and search, and the reconciliation


def test_upload_sessions_live_under_the_data_folder(world: Region) -> None:
    upload_id = begin(clerk(world), {"IM1": b"x" * 10})
    assert (Path(world.server.data) / "uploads" / upload_id / "session.json").is_file()


def test_reindex_keeps_the_reconciliation(world: Region) -> None:
    """Last: it stops the module's server. The index is rebuilt from the stored files,
    whose meta carries the reconciled record."""
    client = clerk(world)
    one = outside_study("OUT-REINDEX", "Outside^Reindex", 2)
    upload_id = upload(client, {"IM1": one[0], "IM2": one[1]})
    key = by_id(scan(client, upload_id))["OUT-REINDEX"]["key"]
    store(client, upload_id, {key: f"{issuer_of('EMH')}/EMH-7002"})
    study_uid, series_uid, _sop = uids(one[0])
    before = qido(client, PatientID="EMH-7002")
    assert study_uid in before

    world.server.stop()
    result = world.server.rix("reindex")
    assert "0 differences" in result.stdout
    world.server.start()

    assert qido(client, PatientID="EMH-7002") == before
    assert study_uid in qido(client, OtherPatientIDs="OUT-REINDEX")
    answer = client.get(f"/dicomweb/studies/{study_uid}/series/{series_uid}/metadata")
    assert answer.status_code == 200, answer.text
    assert {d["00100020"]["Value"][0] for d in answer.json()} == {"EMH-7002"}
    assert world.server.rix("audit", "verify").returncode == 0
