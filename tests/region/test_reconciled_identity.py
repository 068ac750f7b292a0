"""Outside media reconciled to a local record leave rix under that record's identity.

The import stores the outside hospital's bytes unchanged (its PatientID, often without
an issuer); the index holds the instances under the local record a clerk chose
(``rix.reconcile``). Every copy that leaves rix - C-MOVE, C-GET, a routing delivery,
WADO-RS, a download - names the local record (PS3.3 C.7.1.1: Patient ID scoped by
Issuer of Patient ID) with the outside ID kept in Other Patient IDs Sequence (0010,1002),
so the receiving PACS never files them under the outside number. To another trust's PACS
the record's identity there applies, as for any image (``rix.region.identity``). An
ordinary study still leaves byte for byte as stored.

The receivers are DCMTK storescp processes writing what arrives bit for bit (``+B``), a
pynetdicom C-GET requester and dicomweb-client.
"""

from __future__ import annotations

import copy
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pydicom
import pytest
from dicomweb_client import DICOMwebClient
from pydicom.dataset import Dataset

from tests.peers import dcmtk
from tests.peers.dicomweb import after_file_meta, parse_multipart
from tests.peers.objects import instance_key, stored
from tests.region.region import (
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
from tests.routing import index
from tests.web.test_imports import (
    by_id,
    dataset_bytes,
    outside_study,
    scan,
    uids,
    upload,
    zipped,
)
from tests.web.test_imports import (
    store as store_import,
)

NHS_NUMBER = "9434765919"
# one person at EMH and NGH (same NHS number and date of birth: linked), and an EMH
# patient NGH does not know
AT_EMH = Patient(
    key="recon-emh", trust="EMH", patient_id="EMH-8001", nhs_number=NHS_NUMBER,
    birth_date="19800202", sex="F",
)  # fmt: skip
AT_NGH = Patient(
    key="recon-ngh", trust="NGH", patient_id="NGH-8001", nhs_number=NHS_NUMBER,
    birth_date="19800202", sex="F",
)  # fmt: skip
EMH_ONLY = Patient(
    key="recon-emh-only", trust="EMH", patient_id="EMH-8002", birth_date="19900303", sex="M"
)
WORKSTATION = "EMH_WS"  # a routing destination of EMH's
RULES = f"""
[[rule]]
name = "EMH studies to the workstation"
[rule.when]
trust = "EMH"
[rule.send]
ae = "{WORKSTATION}"
"""
EMH_PACS = Caller(ae_title=pacs_of("EMH"))
DEMOGRAPHICS = ("PatientName", "PatientBirthDate", "PatientSex")
IDENTITY = ("PatientID", "IssuerOfPatientID", "OtherPatientIDsSequence", *DEMOGRAPHICS)


@dataclass(frozen=True, slots=True, kw_only=True)
class Imported:
    """One outside study as the CD held it, and the local record it was reconciled to."""

    outside_id: str
    outside_issuer: str
    local: Patient
    files: list[bytes]  # Part 10, as uploaded

    @property
    def study_uid(self) -> str:
        return uids(self.files[0])[0]

    def sent(self) -> dict[str, bytes]:
        """SOP Instance UID → Data Set bytes, as the outside hospital wrote them."""
        return {uids(f)[2]: dataset_bytes(f) for f in self.files}


@dataclass
class World:
    region: Region
    unlinked: Imported  # OUT-9001, no issuer → EMH-8001 (linked to NGH-8001)
    elsewhere: Imported  # OUT-9002 of ELSEWHERE → EMH-8002 (unknown at NGH)

    @property
    def clerk_token(self) -> str:
        return self.region.staff["emh.clerk"].token


@pytest.fixture(scope="module")
def world(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """EMH and NGH with their PACS, a workstation EMH routes every study to, the three
    local records, and two outside studies imported by an EMH clerk and reconciled."""
    folder = tmp_path_factory.mktemp("reconciled")
    env = pytest.MonkeyPatch()
    env.setenv("RIX_STABLE_SECONDS", "1")  # the server routes a study a second after it
    try:
        with region(folder, backend, ("EMH", "NGH")) as r:
            env.undo()
            r.add_destination(WORKSTATION, "EMH", folder / WORKSTATION)
            answer = r.admin.put("/api/rules", content=RULES.encode())
            assert answer.status_code == 200, answer.text
            r.add_staff("emh.clerk", "radiographer", "EMH")
            r.send([AT_EMH, AT_NGH, EMH_ONLY])
            unlinked = imported(r, "OUT-9001", "", AT_EMH)
            elsewhere = imported(r, "OUT-9002", "ELSEWHERE", EMH_ONLY)
            routed = {AT_EMH.study_uid, EMH_ONLY.study_uid, unlinked.study_uid}
            routed_all(r, routed | {elsewhere.study_uid})
            yield World(region=r, unlinked=unlinked, elsewhere=elsewhere)
    finally:
        env.undo()


def routed_all(world: Region, study_uids: set[str]) -> None:
    """Wait until each study's routing has run and every delivery is done (the periodic
    clean-up of browser imports stays pending: ``index.settled`` would wait for it)."""

    def probe() -> list[Any] | None:
        found = [j for j in index.jobs(world.server) if j.kind in ("stable", "send")]
        checked = {json.loads(j.payload)["study_uid"] for j in found if j.kind == "stable"}
        if study_uids <= checked and all(j.state in index.SETTLED for j in found):
            return found
        return None

    jobs = index.wait_for("the routing of the studies", probe)
    assert all(j.state == "done" for j in jobs), [(j.label, j.last_error) for j in jobs]


def imported(world: Region, outside_id: str, issuer: str, local: Patient) -> Imported:
    """An outside study on a zip, uploaded, scanned and reconciled to ``local`` by the
    EMH clerk through ``/api/imports``."""
    files = outside_study(outside_id, f"Outside^{outside_id}", 2, issuer=issuer)
    client = world.http(world.staff["emh.clerk"])
    upload_id = upload(client, {"cd.zip": zipped({f"IMG{n}": f for n, f in enumerate(files)})})
    outside = by_id(scan(client, upload_id))[outside_id]
    summary = store_import(client, upload_id, {outside["key"]: local.record})["summary"]
    assert (summary["stored"], summary["refused"]) == (2, []), summary
    return Imported(outside_id=outside_id, outside_issuer=issuer, local=local, files=files)


# --- what a receiver must find ---


def other_ids(ds: Dataset) -> set[tuple[str, str]]:
    return {
        (i.PatientID, i.get("IssuerOfPatientID", "")) for i in ds.get("OtherPatientIDsSequence", [])
    }


def without_identity(ds: Dataset) -> Dataset:
    ds = copy.deepcopy(ds)
    for keyword in (*IDENTITY, "IssuerOfPatientIDQualifiersSequence"):
        if keyword in ds:
            delattr(ds, keyword)
    return ds


def check_names_the_local_record(
    study: Imported, received: dict[str, Dataset], *, patient_id: str, issuer: str
) -> None:
    """Every instance arrived, naming (``patient_id``, ``issuer``) with the local record's
    demographics, the outside ID among the other IDs, and nothing else changed."""
    sent = study.sent()
    assert sorted(received) == sorted(sent)
    local = study.local
    for uid, ds in received.items():
        assert (ds.PatientID, ds.IssuerOfPatientID) == (patient_id, issuer)
        assert str(ds.PatientName) == f"{local.key.title()}^Test"
        assert (ds.PatientBirthDate, ds.PatientSex) == (local.birth_date, local.sex)
        assert (study.outside_id, study.outside_issuer) in other_ids(ds)
        if local.nhs_number:
            assert (local.nhs_number, NHS) in other_ids(ds)
        original = parse(sent[uid])
        assert ds.PixelData == original.PixelData
        assert without_identity(ds) == without_identity(original)


def check_local(study: Imported, received: dict[str, Dataset]) -> None:
    local = study.local
    check_names_the_local_record(study, received, patient_id=local.patient_id, issuer=local.issuer)


def parsed(received: dict[str, bytes]) -> dict[str, Dataset]:
    return {uid: parse(data) for uid, data in received.items()}


def moved(world: World, study_uid: str, destination: dcmtk.StoreSCP) -> dict[str, bytes]:
    """C-MOVE of a study by EMH's PACS to ``destination``; what it received."""
    destination.clear()
    result = move_study(world.region.port, EMH_PACS, study_uid, destination.ae_title)
    assert (result.status, result.failed) == (SUCCESS, 0), result.error_comment
    return received_by(destination)


def of_study(received: dict[str, bytes], sop_uids: set[str]) -> dict[str, bytes]:
    return {uid: data for uid, data in received.items() if uid in sop_uids}


def sent_by_pacs(world: World, patient: Patient) -> dict[str, bytes]:
    return {
        uid: world.region.sent[uid] for uid in (str(ds.SOPInstanceUID) for ds in instances(patient))
    }


def dicomweb(world: World) -> DICOMwebClient:
    origin = world.region.origin
    client = DICOMwebClient(
        origin + "/dicomweb", headers={"Authorization": f"Bearer {world.clerk_token}"}
    )
    client.host = origin.removeprefix("http://")  # as tests/web/conftest.py says why
    return client


# --- reconciled instances ---


def test_cmove_to_the_importing_trusts_pacs_names_the_local_record(world: World) -> None:
    for study in (world.unlinked, world.elsewhere):
        received = moved(world, study.study_uid, world.region.pacs["EMH"])
        check_local(study, parsed(received))


def test_cget_by_the_importing_trusts_pacs_names_the_local_record(world: World) -> None:
    for study in (world.unlinked, world.elsewhere):
        result = get_study(world.region.port, EMH_PACS, study.study_uid)
        assert (result.status, result.failed) == (SUCCESS, 0), result.error_comment
        check_local(study, parsed(result.received))


def test_a_routing_delivery_names_the_local_record(world: World) -> None:
    received = received_by(world.region.destinations[WORKSTATION])
    for study in (world.unlinked, world.elsewhere):
        check_local(study, parsed(of_study(received, set(study.sent()))))


def test_wado_rs_retrieve_names_the_local_record(world: World) -> None:
    client = dicomweb(world)
    for study in (world.unlinked, world.elsewhere):
        _study_uid, series_uid, _sop = uids(study.files[0])
        got = {
            uid: client.retrieve_instance(study.study_uid, series_uid, uid) for uid in study.sent()
        }
        check_local(study, got)
        whole = client.retrieve_study(study.study_uid)
        check_local(study, {str(ds.SOPInstanceUID): ds for ds in whole})


def test_wado_uri_retrieve_names_the_local_record(world: World) -> None:
    headers = {"Authorization": f"Bearer {world.clerk_token}"}
    study = world.unlinked
    _study_uid, series_uid, _sop = uids(study.files[0])
    got = {}
    for uid in study.sent():
        params = {
            "requestType": "WADO",
            "studyUID": study.study_uid,
            "seriesUID": series_uid,
            "objectUID": uid,
            "contentType": "application/dicom",
        }
        answer = httpx.get(world.region.origin + "/wado", params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        got[uid] = pydicom.dcmread(io.BytesIO(answer.content))
    check_local(study, got)


def test_cmove_to_another_trusts_pacs_carries_that_trusts_id_and_keeps_the_outside_id(
    world: World,
) -> None:
    """Reconciled to EMH-8001, who is NGH-8001 at NGH: NGH's PACS gets NGH-8001, with
    EMH-8001 and the outside ID among the other IDs."""
    received = parsed(moved(world, world.unlinked.study_uid, world.region.pacs["NGH"]))
    check_names_the_local_record(
        world.unlinked, received, patient_id=AT_NGH.patient_id, issuer=issuer_of("NGH")
    )
    for ds in received.values():
        assert (AT_EMH.patient_id, issuer_of("EMH")) in other_ids(ds)


def test_cmove_to_another_trust_that_does_not_know_the_patient_states_the_local_issuer(
    world: World,
) -> None:
    """Reconciled to EMH-8002, unknown at NGH: EMH's record with EMH's issuer stated; the
    outside issuer never scopes the local ID."""
    received = parsed(moved(world, world.elsewhere.study_uid, world.region.pacs["NGH"]))
    check_local(world.elsewhere, received)


def test_a_download_names_the_local_record_in_its_files_and_its_dicomdir(world: World) -> None:
    """The portal's zip: a CD burnt from it must not carry the outside ID alone."""
    http = world.region.http(world.region.staff["emh.clerk"])
    for study in (world.unlinked, world.elsewhere):
        answer = http.get(f"/studies/{study.study_uid}/download")
        assert answer.status_code == 200, answer.text
        assert int(answer.headers["content-length"]) == len(answer.content)
        with zipfile.ZipFile(io.BytesIO(answer.content)) as media:
            names = [n for n in media.namelist() if n != "DICOMDIR"]
            got = [pydicom.dcmread(io.BytesIO(media.read(n))) for n in names]
            dicomdir = pydicom.dcmread(io.BytesIO(media.read("DICOMDIR")))
        check_local(study, {str(ds.SOPInstanceUID): ds for ds in got})
        patients = [
            r for r in dicomdir.DirectoryRecordSequence if r.DirectoryRecordType == "PATIENT"
        ]
        assert [str(r.PatientID) for r in patients] == [study.local.patient_id]


def test_rix_export_names_the_local_record(
    world: World, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """``rix export`` makes the CD itself: the same as the download."""
    for study in (world.unlinked, world.elsewhere):
        folder = tmp_path_factory.mktemp("export")
        world.region.server.rix("export", study.study_uid, "--to", str(folder))
        files = [p for p in folder.rglob("*") if p.is_file() and p.name != "DICOMDIR"]
        got = [pydicom.dcmread(p) for p in files]
        check_local(study, {str(ds.SOPInstanceUID): ds for ds in got})


def test_the_stored_bytes_stay_as_the_outside_hospital_wrote_them(world: World) -> None:
    for study in (world.unlinked, world.elsewhere):
        for data in study.files:
            assert stored(world.region.server.data, instance_key(*uids(data)))[1] == (
                dataset_bytes(data)
            )


# --- an ordinary study: as stored, byte for byte ---


def test_an_ordinary_study_leaves_byte_for_byte_as_stored(world: World) -> None:
    sent = sent_by_pacs(world, AT_EMH)
    assert moved(world, AT_EMH.study_uid, world.region.pacs["EMH"]) == sent
    assert get_study(world.region.port, EMH_PACS, AT_EMH.study_uid).received == sent
    delivered = received_by(world.region.destinations[WORKSTATION])
    assert of_study(delivered, set(sent)) == sent
    http = world.region.http(world.region.staff["emh.clerk"])
    answer = http.get(
        f"/dicomweb/studies/{AT_EMH.study_uid}",
        headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
    )
    assert answer.status_code == 200, answer.text
    parts = parse_multipart(answer.headers["content-type"], answer.content)
    assert sorted(after_file_meta(p.body) for p in parts) == sorted(sent.values())
