"""A region where patients move: five trusts, a person with records at three of them,
and trusts whose PACS (``rix trust add --pacs``) receive a transfer.

- A and C hold the studies; B, D and E receive transfers.
- B has agreements with A and C, D with A only, E with A only; E's PACS is down.
- MOVING has records at A, B and C (one NHS number), with a recent study at each and an
  old one at A, outside the transfer window (``transfer_days``); NEWCOMER has records at
  A and C only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.peers import dcmtk, postgres
from tests.peers.server import RixServer, free_port
from tests.region.region import (
    Caller,
    Patient,
    Region,
    instances,
    issuer_of,
    pacs_of,
    store,
)

MOVING_NHS = "9434765919"
NEWCOMER_NHS = "9434765927"
MOVING_AT_A = Patient(key="moving-a", trust="A", patient_id="A100", nhs_number=MOVING_NHS)
MOVING_AT_A_LONG_AGO = Patient(
    key="moving-a-old", trust="A", patient_id="A100", nhs_number=MOVING_NHS
)
MOVING_AT_B = Patient(key="moving-b", trust="B", patient_id="B200", nhs_number=MOVING_NHS)
MOVING_AT_C = Patient(key="moving-c", trust="C", patient_id="C300", nhs_number=MOVING_NHS)
NEWCOMER_AT_A = Patient(key="newcomer-a", trust="A", patient_id="A101", nhs_number=NEWCOMER_NHS)
NEWCOMER_AT_C = Patient(key="newcomer-c", trust="C", patient_id="C301", nhs_number=NEWCOMER_NHS)
RECENT = (MOVING_AT_A, MOVING_AT_B, MOVING_AT_C, NEWCOMER_AT_A, NEWCOMER_AT_C)

WITH_PACS = ("B", "D", "E")  # receivers: `rix trust add --pacs`
SOURCES = ("A", "C")
AGREEMENTS = (("B", "A"), ("B", "C"), ("D", "A"), ("E", "A"))
DOWN = "E"  # its PACS is registered on a port where nothing listens


def days_ago(days: int) -> str:
    return (date.today() - timedelta(days=days)).strftime("%Y%m%d")


def send(region: Region, patient: Patient, study_date: str) -> None:
    """The patient's study, dated ``study_date``, sent by its trust's PACS."""
    datasets = instances(patient)
    for ds in datasets:
        ds.StudyDate = study_date
    region.sent.update(store(region.port, Caller(ae_title=pacs_of(str(patient.trust))), datasets))


@contextmanager
def moving_region(folder: Path, backend: str) -> Iterator[Region]:
    """The region above on a server of its own, listening for HL7 on ``hl7_port(r)``."""
    url = postgres.create_database(migrated=True) if backend == "postgresql" else ""
    server = RixServer(
        data=folder / "data",
        database_url=url,
        extra_env={"RIX_HL7_PORT": str(free_port()), "RIX_STABLE_SECONDS": "1"},
    )
    try:
        for code in WITH_PACS:
            name, issuer = f"{code} NHS Trust", issuer_of(code)
            server.add_trust(code, name, issuer, pacs_of(code))
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
            _build(region, folder)
            yield region
    finally:
        server.stop(wait=False)
        if url:
            postgres.drop_database(url)


def _build(region: Region, folder: Path) -> None:
    for code in SOURCES:
        body = {"code": code, "name": f"{code} NHS Trust", "issuer": issuer_of(code)}
        assert region.admin.post("/api/trusts", json=body).status_code == 201
    for code in (*SOURCES, *WITH_PACS):
        if code != DOWN:
            region.pacs[code] = region.add_destination(pacs_of(code), code, folder / code)
    down = {"title": pacs_of(DOWN), "host": dcmtk.HOST, "port": free_port(), "trust": DOWN}
    assert region.admin.post("/api/aes", json=down).status_code == 201
    for trust, other in AGREEMENTS:
        answer = region.admin.post("/api/agreements", json={"trust": trust, "other": other})
        assert answer.status_code == 201, answer.text
    region.add_staff("b.clinician", "clinician", "B")
    region.add_staff("d.clinician", "clinician", "D")
    for patient in RECENT:
        send(region, patient, days_ago(30))
    send(region, MOVING_AT_A_LONG_AGO, days_ago(3 * 365))


def sop_uids(*patients: Patient) -> list[str]:
    return sorted(str(ds.SOPInstanceUID) for p in patients for ds in instances(p))


def hl7_port(region: Region) -> int:
    return int(region.server.extra_env["RIX_HL7_PORT"])


def finished(region: Region, job: int, timeout: float = 60.0) -> dict[str, Any]:
    """``/api/jobs/{job}`` once the transfer has run and every delivery has finished."""
    deadline = time.monotonic() + timeout
    while True:
        answer = region.admin.get(f"/api/jobs/{job}")
        assert answer.status_code == 200, answer.text
        detail: dict[str, Any] = answer.json()
        children = region.admin.get("/api/jobs", params={"parent": job}).json()
        if detail["state"] == "done" and all(
            c["state"] in ("done", "dead", "cancelled") for c in children
        ):
            return detail
        assert time.monotonic() < deadline, (detail, children)
        time.sleep(0.2)
