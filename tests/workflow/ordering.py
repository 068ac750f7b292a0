"""The order workflow's region and the messages its trusts' systems send, written without
rix's code: HL7 v2 ORM^O01, OMI^O23 and ADT over MLLP, and modalities (C-STORE, MPPS).

Trusts A and B have a sharing agreement, C has none. Each trust's modality AEs are
registered from 127.0.0.1 (so its HL7 feed may come from there too); ``OUTSIDER`` is an
AE nobody registered. A session server per backend serves every test of the folder:
each test uses patients and placer numbers of its own.
"""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.peers import dcmtk, postgres
from tests.peers.server import RixServer, free_port
from tests.peers.synthetic import ct_slice
from tests.region.region import Caller, Region, Staff, issuer_of, store
from tests.routing.mllp import END, START

WHEN = "20261127120000"
TRUSTS = ("A", "B", "C")
MODALITIES = {"A_CT": "A", "A_MR": "A", "B_CT": "B", "C_CT": "C"}
OUTSIDER = "NOBODY_CT"
_serial = itertools.count(1)


def unique(prefix: str) -> str:
    """A number no other test uses (placer numbers, hospital numbers, control IDs)."""
    return f"{prefix}{next(_serial)}{time.monotonic_ns() % 100000}"


@dataclass
class Workflow:
    region: Region
    hl7_port: int
    staff: dict[str, Staff]

    @property
    def server(self) -> RixServer:
        return self.region.server

    @property
    def port(self) -> int:
        return self.region.port

    def http(self, username: str) -> httpx.Client:
        return self.region.http(self.staff[username])

    def send(self, message: str, source: str = "127.0.0.1") -> Reply:
        return send(self.hl7_port, message, source)

    def orders_of(self, username: str, **params: Any) -> list[dict[str, Any]]:
        answer = self.http(username).get("/api/orders", params=params)
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()
        return found

    def order(self, username: str, placer: str) -> dict[str, Any]:
        [found] = [o for o in self.orders_of(username) if o["placer_number"] == placer]
        return found


STAFF = (
    ("a.clinician", "clinician", "A"),
    ("a.admin", "trust-admin", "A"),
    ("b.clinician", "clinician", "B"),
    ("c.clinician", "clinician", "C"),
)


@contextmanager
def workflow_region(folder: Path, backend: str) -> Iterator[Workflow]:
    """The region above on a server of its own, HL7 on, studies stable after 0.3 s."""
    url = postgres.create_database(migrated=True) if backend == "postgresql" else ""
    hl7_port = free_port()
    server = RixServer(
        data=folder / "data",
        database_url=url,
        extra_env={"RIX_HL7_PORT": str(hl7_port), "RIX_STABLE_SECONDS": "0.3"},
    )
    try:
        server.add_user("admin", "region-admin")
        token = server.create_token("admin")
        server.start()
        with ExitStack() as stack:
            admin = stack.enter_context(
                httpx.Client(
                    base_url=f"http://127.0.0.1:{server.http_port}",
                    timeout=30,
                    headers={"Authorization": f"Bearer {token}"},
                )
            )
            region = Region(server=server, admin=admin, pacs={}, stack=stack)
            for code in TRUSTS:
                body = {"code": code, "name": f"{code} NHS Trust", "issuer": issuer_of(code)}
                assert admin.post("/api/trusts", json=body).status_code == 201
            for title, trust in MODALITIES.items():
                peer = {"title": title, "host": dcmtk.HOST, "port": free_port(), "trust": trust}
                assert admin.post("/api/aes", json=peer).status_code == 201
            assert admin.post("/api/agreements", json={"trust": "A", "other": "B"}).is_success
            staff = {name: region.add_staff(name, roles, trust) for name, roles, trust in STAFF}
            yield Workflow(region=region, hl7_port=hl7_port, staff=staff)
    finally:
        server.stop(wait=False)
        if url:
            postgres.drop_database(url)


# --- HL7 over MLLP ---


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """An acknowledgement: MSA-1..3 and the ERR segment's fields, if any."""

    code: str
    control_id: str
    text: str
    err: list[str]


def send(port: int, message: str, source: str = "127.0.0.1") -> Reply:
    with socket.create_connection(("127.0.0.1", port), 30, (source, 0)) as sock:
        sock.sendall(START + message.encode() + END)
        reply = b""
        while END not in reply:
            chunk = sock.recv(65536)
            assert chunk, f"the connection closed before an ACK; got {reply!r}"
            reply += chunk
    segments = [s.split("|") for s in reply.split(END)[0][1:].decode().split("\r") if s]
    [msa] = [s for s in segments if s[0] == "MSA"]
    msa += [""] * (4 - len(msa))
    err = next((s for s in segments if s[0] == "ERR"), [])
    return Reply(code=msa[1], control_id=msa[2], text=msa[3], err=err)


def _fields(name: str, size: int, values: dict[int, str]) -> str:
    fields = [name] + [""] * size
    for n, value in values.items():
        fields[n] = value
    return "|".join(fields).rstrip("|")


@dataclass(frozen=True, slots=True, kw_only=True)
class Placed:
    """One order as an order-entry system sends it (ORC/OBR, or OMI's TQ1 and IPC too)."""

    placer: str
    control: str = "NW"
    filler: str = ""
    status: str = ""  # ORC-5 (SC messages)
    accession: str = ""
    modality: str = "CT"
    procedure: str = "CTHEAD^CT Head"
    body_part: str = "HEAD"
    when: str = "20261201093000"
    priority: str = ""  # S for STAT
    station: str = "A_CT"
    study_uid: str = ""
    requested_procedure_id: str = ""

    def orc(self) -> str:
        timing = f"^^^{self.when}^^{self.priority}"
        values = {1: self.control, 2: self.placer, 3: self.filler, 5: self.status, 7: timing}
        return _fields("ORC", 21, {**values, 9: WHEN, 12: "D123^Doctor^Dana"})

    def obr(self) -> str:
        return _fields(
            "OBR",
            45,
            {
                1: "1",
                2: self.placer,
                3: self.filler,
                4: self.procedure,
                15: f"^^^{self.body_part}",
                18: self.accession,
                24: self.modality,
                27: f"^^^{self.when}^^{self.priority}",
                31: "^query bleed",
                36: self.when,
            },
        )

    def omi(self) -> list[str]:
        tq1 = _fields("TQ1", 12, {1: "1", 7: self.when, 9: self.priority})
        ipc = _fields(
            "IPC",
            9,
            {
                1: self.accession,
                2: self.requested_procedure_id,
                3: self.study_uid,
                4: "SPS1",
                5: self.modality,
                9: self.station,
            },
        )
        return [self.orc(), tq1, self.obr(), ipc]


def orm(
    *placed: Placed,
    facility: str = "A",
    patient: str = "",
    name: str = "Order^Olive",
    birth_date: str = "19800101",
    patient_class: str = "O",
    omi: bool = False,
    control_id: str = "",
) -> str:
    """ORM^O01 (or OMI^O23) from ``facility``'s order entry for PID-3 ``patient``."""
    kind = "OMI^O23^OMI_O23" if omi else "ORM^O01^ORM_O01"
    segments = [
        f"MSH|^~\\&|RIS|{facility}|RIX|RIX|{WHEN}||{kind}|{control_id or unique('C')}|P|2.5",
        f"PID|1||{patient}||{name}||{birth_date}|F",
        f"PV1|1|{patient_class}",
    ]
    for one in placed:
        segments += one.omi() if omi else [one.orc(), one.obr()]
    return "\r".join(segments) + "\r"


def adt(
    trigger: str,
    *,
    facility: str = "A",
    patient: str = "",
    name: str = "Admit^Ann",
    birth_date: str = "19800101",
    sex: str = "F",
    merged: str = "",
    visit: str = "",
    discharged: str = "",
) -> str:
    """ADT^``trigger`` with PID-3 ``patient``, MRG-1 ``merged`` for an A40, PV1-19 ``visit``
    and PV1-45 ``discharged`` (an A03's discharge time)."""
    segments = [
        f"MSH|^~\\&|PAS|{facility}|RIX|RIX|{WHEN}||ADT^{trigger}^ADT_A01|{unique('C')}|P|2.5",
        f"EVN|{trigger}|{WHEN}",
        f"PID|1||{patient}||{name}||{birth_date}|{sex}",
    ]
    if merged:
        segments.append(f"MRG|{merged}")
    segments.append(_fields("PV1", 45, {1: "1", 2: "I", 19: visit, 45: discharged}))
    return "\r".join(segments) + "\r"


def hospital_number(patient_id: str, trust: str, nhs_number: str = "") -> str:
    """PID-3: the trust's hospital number, and an NHS number when given."""
    own = f"{patient_id}^^^{issuer_of(trust)}^MR"
    return f"{own}~{nhs_number}^^^NHS^NH" if nhs_number else own


# --- studies from modalities ---


def study(
    port: int,
    modality_ae: str,
    patient_id: str,
    *,
    accession: str = "",
    study_uid: str = "",
    nhs_number: str = "",
    birth_date: str = "19800101",
) -> str:
    """A two-slice CT study stored by ``modality_ae``; its Study Instance UID."""
    study_uid = study_uid or str(generate_uid())
    series_uid = str(generate_uid())
    datasets = []
    for n in (1, 2):
        ds = ct_slice(
            patient_id=patient_id,
            patient_name="Study^Sam",
            study_uid=study_uid,
            series_uid=series_uid,
            number=n,
        )
        ds.AccessionNumber = accession
        ds.PatientBirthDate = birth_date
        if nhs_number:
            item = Dataset()
            item.PatientID = nhs_number
            item.IssuerOfPatientID = "NHS"
            ds.OtherPatientIDsSequence = [item]
        datasets.append(ds)
    store(port, Caller(ae_title=modality_ae), datasets)
    return study_uid


def wait_for(what: str, check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def studies_seen(workflow: Workflow, username: str, **params: str) -> list[str]:
    """QIDO-RS study UIDs ``username`` sees."""
    answer = workflow.http(username).get("/dicomweb/studies", params=params)
    assert answer.status_code in (200, 204), answer.text
    if answer.status_code == 204 or not answer.content:
        return []
    return sorted(s["0020000D"]["Value"][0] for s in answer.json())
