"""A region for tests: trusts with their own PACS (a DCMTK storescp each, registered to
the trust), their staff, and patients stored by each trust's own AE; and the DICOM
requests of a peer that may name its user (User Identity Negotiation, PS3.7 D.3.3.7).

The region is built through the server's own doors: the functions behind the command line
(called in process, see ``RixServer.archive``) for the first region administrator and the
agreements, then the HTTP API (``/api``) as that administrator.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import build_context, build_role, evt
from pynetdicom.pdu_primitives import UserIdentityNegotiation

from tests.peers import dcmtk, scu
from tests.peers.objects import dataset_of
from tests.peers.server import RixServer
from tests.peers.synthetic import CT_IMAGE_STORAGE, ct_slice
from tests.web.conftest import own_server

NHS = "NHS"  # Issuer of Patient ID of an NHS number
USERNAME_AND_PASSCODE = 2  # PS3.7 D.3.3.7.1 User-Identity-Type
INSTANCES_PER_STUDY = 2
PENDING = (0xFF00, 0xFF01)  # PS3.4 C.4.1.1.4: Pending, and Pending with optional keys
SUCCESS = 0x0000
NOT_AUTHORIZED = 0x0124  # PS3.7 C.5: Refused: Not Authorized


def issuer_of(trust: str) -> str:
    """Each test trust's hospital numbers: an issuer that is not the trust's code."""
    return f"{trust}-MRN"


# --- patients and their studies ---


@dataclass(frozen=True, slots=True, kw_only=True)
class Patient:
    """One local record and its one study, sent by its trust's PACS."""

    key: str  # names the patient in test ids
    trust: str | None  # whose PACS sends the study; None: an unregistered modality
    patient_id: str  # sent without Issuer of Patient ID: the sender's issuer applies
    nhs_number: str = ""  # sent in Other Patient IDs Sequence, issuer NHS
    birth_date: str = "19700101"
    sex: str = "F"

    @property
    def study_uid(self) -> str:
        return str(generate_uid(entropy_srcs=["rix-region", self.key]))

    @property
    def issuer(self) -> str:
        return "" if self.trust is None else issuer_of(self.trust)

    @property
    def record(self) -> str:
        """The record as rix names it: issuer/patient ID."""
        return f"{self.issuer}/{self.patient_id}"

    def __str__(self) -> str:
        return self.key


def instances(patient: Patient) -> list[Dataset]:
    """The patient's study: one CT series of ``INSTANCES_PER_STUDY`` small slices."""
    series_uid = str(generate_uid(entropy_srcs=["rix-region", patient.key, "series"]))
    out = []
    for number in range(1, INSTANCES_PER_STUDY + 1):
        ds = ct_slice(
            patient_id=patient.patient_id,
            patient_name=f"{patient.key.title()}^Test",
            study_uid=patient.study_uid,
            series_uid=series_uid,
            number=number,
        )
        ds.SOPInstanceUID = generate_uid(entropy_srcs=["rix-region", patient.key, str(number)])
        ds.PatientBirthDate = patient.birth_date
        ds.PatientSex = patient.sex
        if patient.nhs_number:
            item = Dataset()
            item.PatientID = patient.nhs_number
            item.IssuerOfPatientID = NHS
            item.TypeOfPatientID = "TEXT"
            ds.OtherPatientIDsSequence = DicomSequence([item])
        out.append(ds)
    return out


def pacs_of(trust: str) -> str:
    return f"{trust}_PACS"


# --- a DICOM peer, possibly naming its user ---


@dataclass(frozen=True, slots=True, kw_only=True)
class Caller:
    """Who opens an association: a calling AE title and, if any, the user it names."""

    ae_title: str
    username: str = ""
    passcode: str = ""  # the user's password, or one of their API tokens

    def ext_neg(self) -> list[Any]:
        if not self.username:
            return []
        item = UserIdentityNegotiation()
        item.user_identity_type = USERNAME_AND_PASSCODE
        item.primary_field = self.username.encode()
        item.secondary_field = self.passcode.encode()
        return [item]


@dataclass(frozen=True, slots=True, kw_only=True)
class Retrieved:
    """The final C-MOVE or C-GET response, and what a C-GET requester received."""

    status: int
    completed: int
    failed: int
    error_comment: str
    received: dict[str, bytes] = field(default_factory=dict)  # SOP UID → Data Set bytes


def store(port: int, caller: Caller, datasets: Sequence[Dataset]) -> dict[str, bytes]:
    """C-STORE ``datasets`` as ``caller``; the Data Set bytes sent, by SOP Instance UID."""
    contexts = [build_context(CT_IMAGE_STORAGE, [ExplicitVRLittleEndian])]
    sent = {}
    with scu.association(port, contexts, calling=caller.ae_title, ext_neg=caller.ext_neg()) as a:
        for ds in datasets:
            data = scu.encode(ds)
            status = scu.store_bytes(
                a,
                sop_class=str(ds.SOPClassUID),
                sop_instance=str(ds.SOPInstanceUID),
                transfer_syntax=ExplicitVRLittleEndian,
                dataset=data,
            )
            assert status.Status == 0x0000, status
            sent[str(ds.SOPInstanceUID)] = data
    return sent


def find(
    port: int, caller: Caller, identifier: Dataset, model: str = scu.STUDY_ROOT_FIND
) -> list[Dataset]:
    """C-FIND as ``caller``; the identifiers of the pending responses (final: Success)."""
    found = []
    with scu.association(
        port, [build_context(model)], calling=caller.ae_title, ext_neg=caller.ext_neg()
    ) as a:
        for status, match in a.send_c_find(identifier, model):
            assert "Status" in status, "no C-FIND response (association aborted?)"
            if status.Status in PENDING:
                assert match is not None
                found.append(match)
            else:
                assert status.Status == SUCCESS, status
    return found


def find_studies(port: int, caller: Caller, **keys: str) -> list[str]:
    """Study Root C-FIND at STUDY level; the Study Instance UIDs matched."""
    found = find(port, caller, scu.query("STUDY", StudyInstanceUID="", **keys))
    return sorted(str(match.StudyInstanceUID) for match in found)


def move(port: int, caller: Caller, identifier: Dataset, destination: str) -> Retrieved:
    """Study Root C-MOVE to ``destination`` (an AE title rix knows)."""
    contexts = [build_context(scu.STUDY_ROOT_MOVE)]
    with scu.association(port, contexts, calling=caller.ae_title, ext_neg=caller.ext_neg()) as a:
        return _final(a.send_c_move(identifier, destination, scu.STUDY_ROOT_MOVE))


def move_study(port: int, caller: Caller, study_uid: str, destination: str) -> Retrieved:
    return move(port, caller, scu.query("STUDY", StudyInstanceUID=study_uid), destination)


def _final(responses: Iterator[tuple[Dataset, Dataset | None]]) -> Retrieved:
    for status, _identifier in responses:
        assert "Status" in status, "no response (association aborted?)"
        if status.Status in PENDING:
            continue
        return Retrieved(
            status=int(status.Status),
            completed=int(status.get("NumberOfCompletedSuboperations") or 0),
            failed=int(status.get("NumberOfFailedSuboperations") or 0),
            error_comment=str(status.get("ErrorComment", "")),
        )
    raise AssertionError("retrieve ended without a final response")


def get_study(port: int, caller: Caller, study_uid: str) -> Retrieved:
    """Study Root C-GET of one study, accepting CT images in Explicit VR Little Endian
    (the syntax they were stored in) as storage SCP on the same association."""
    received: dict[str, bytes] = {}

    def on_store(event: Any) -> int:
        received[str(event.request.AffectedSOPInstanceUID)] = event.request.DataSet.getvalue()
        return 0x0000

    identifier = scu.query("STUDY", StudyInstanceUID=study_uid)
    contexts = [
        build_context(scu.STUDY_ROOT_GET),
        build_context(CT_IMAGE_STORAGE, [ExplicitVRLittleEndian]),
    ]
    ext_neg = [build_role(CT_IMAGE_STORAGE, scp_role=True), *caller.ext_neg()]
    with scu.association(
        port,
        contexts,
        calling=caller.ae_title,
        ext_neg=ext_neg,
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    ) as a:
        final = _final(a.send_c_get(identifier, scu.STUDY_ROOT_GET))
    return Retrieved(
        status=final.status,
        completed=final.completed,
        failed=final.failed,
        error_comment=final.error_comment,
        received=received,
    )


def received_by(scp: dcmtk.StoreSCP) -> dict[str, bytes]:
    """SOP Instance UID → Data Set bytes of every file a storescp (``+B``) wrote."""
    out = {}
    for path in sorted(p for p in scp.folder.iterdir() if p.is_file()):
        _syntax, dataset = dataset_of(path)
        meta = pydicom.dcmread(path, stop_before_pixels=True).file_meta
        out[str(meta.MediaStorageSOPInstanceUID)] = dataset
    return out


def parse(dataset: bytes) -> Dataset:
    """Explicit VR Little Endian Data Set bytes (of a CT image), as pydicom reads them."""
    part10 = scu.part10(CT_IMAGE_STORAGE, "1.2.3", ExplicitVRLittleEndian, dataset)
    return pydicom.dcmread(io.BytesIO(part10))


# --- the region ---


@dataclass(frozen=True, slots=True, kw_only=True)
class Staff:
    username: str
    password: str
    token: str
    trust: str | None

    def with_token(self, ae_title: str) -> Caller:
        """This user at a workstation calling as ``ae_title``, an API token as passcode."""
        return Caller(ae_title=ae_title, username=self.username, passcode=self.token)

    def with_password(self, ae_title: str) -> Caller:
        return Caller(ae_title=ae_title, username=self.username, passcode=self.password)


@dataclass
class Region:
    server: RixServer
    admin: httpx.Client  # the region administrator's
    pacs: dict[str, dcmtk.StoreSCP]  # trust code → its PACS, a storescp registered to it
    destinations: dict[str, dcmtk.StoreSCP] = field(default_factory=dict)  # by AE title
    staff: dict[str, Staff] = field(default_factory=dict)
    agreements: set[frozenset[str]] = field(default_factory=set)
    stack: ExitStack = field(default_factory=ExitStack)
    clients: dict[str, httpx.Client] = field(default_factory=dict)  # username → its client
    sent: dict[str, bytes] = field(default_factory=dict)  # SOP UID → Data Set bytes sent

    @property
    def port(self) -> int:
        return self.server.dicom_port

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.http_port}"

    def client(self, token: str) -> httpx.Client:
        return self.stack.enter_context(
            httpx.Client(
                base_url=self.origin, timeout=30, headers={"Authorization": f"Bearer {token}"}
            )
        )

    def add_staff(self, username: str, roles: str, trust: str | None, password: str = "") -> Staff:
        """A user added and given an API token by the region administrator."""
        password = password or f"{username}-password"
        body = {"username": username, "roles": roles.split(","), "password": password}
        if trust is not None:
            body["trust"] = trust
        answer = self.admin.post("/api/users", json=body)
        assert answer.status_code == 201, answer.text
        token = self.admin.post(f"/api/users/{username}/tokens", json={"label": "tests"})
        assert token.status_code == 201, token.text
        staff = Staff(
            username=username, password=password, token=token.json()["token"], trust=trust
        )
        self.staff[username] = staff
        return staff

    def http(self, staff: Staff) -> httpx.Client:
        if staff.username not in self.clients:
            self.clients[staff.username] = self.client(staff.token)
        return self.clients[staff.username]

    def add_destination(self, ae_title: str, trust: str | None, folder: Path) -> dcmtk.StoreSCP:
        """A storescp registered as a C-MOVE destination (of ``trust``, or of none)."""
        scp = self.stack.enter_context(dcmtk.storescp(folder, ae_title=ae_title))
        body: dict[str, Any] = {"title": ae_title, "host": dcmtk.HOST, "port": scp.port}
        if trust is not None:
            body["trust"] = trust
        answer = self.admin.post("/api/aes", json=body)
        assert answer.status_code == 201, answer.text
        self.destinations[ae_title] = scp
        return scp

    def send(self, patients: Sequence[Patient]) -> None:
        """Each patient's study, sent by its trust's PACS (or an unregistered modality)."""
        for patient in patients:
            title = "MODALITY" if patient.trust is None else pacs_of(patient.trust)
            self.sent.update(store(self.port, Caller(ae_title=title), instances(patient)))

    def agree(self, one: str, other: str, agreed: bool) -> None:
        """Make or end the agreement as the command line does, only when it changes."""
        pair = frozenset((one, other))
        if (pair in self.agreements) == agreed:
            return
        self.server.agree(one, other, agreed)
        if agreed:
            self.agreements.add(pair)
        else:
            self.agreements.discard(pair)

    def refer(self, staff: Staff, patient: Patient, *, expires_at: float | None = None) -> None:
        """A referral of ``patient`` at the user's trust, recorded by the user (by NHS
        number, or by the record when the patient has none)."""
        body: dict[str, Any] = {"trust": staff.trust, "kind": "referral"}
        body.update(named(patient))
        if expires_at is not None:
            body["expires_at"] = expires_at
        answer = self.http(staff).post("/api/relationships", json=body)
        assert answer.status_code == 201, answer.text

    def break_glass(self, staff: Staff, patient: Patient) -> httpx.Response:
        body = {**named(patient), "reason": "unconscious in ED, prior imaging needed"}
        return self.http(staff).post("/api/break-glass", json=body)


def named(patient: Patient) -> dict[str, str]:
    if patient.nhs_number:
        return {"nhs_number": patient.nhs_number}
    return {"patient": patient.record}


@contextmanager
def region(folder: Path, backend: str, trusts: Sequence[str]) -> Iterator[Region]:
    """A server of its own with ``trusts``, each with its PACS, and a region administrator
    (made as the command line makes one on a new server)."""
    with own_server(folder, backend) as server, ExitStack() as stack:
        server.add_user("admin", "region-admin")
        token = server.create_token("admin")
        origin = f"http://127.0.0.1:{server.http_port}"
        admin = stack.enter_context(
            httpx.Client(base_url=origin, timeout=30, headers={"Authorization": f"Bearer {token}"})
        )
        built = Region(server=server, admin=admin, pacs={}, stack=stack)
        for code in trusts:
            body = {"code": code, "name": f"{code} NHS Trust", "issuer": issuer_of(code)}
            answer = admin.post("/api/trusts", json=body)
            assert answer.status_code == 201, answer.text
            built.pacs[code] = built.add_destination(pacs_of(code), code, folder / pacs_of(code))
        yield built


def an_hour_ago() -> float:
    return time.time() - 3600
