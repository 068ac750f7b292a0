"""Signed reports out as HL7 v2.5 ORU^R01 over MLLP through the durable job queue, on
SQLite and PostgreSQL: the message names the patient by the trust's own record and
carries the order's numbers; a receiver that was down gets the report once it is up, and
exactly once; an AE answer is retried until the receiver accepts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Row, select

from rix.archive import Archive
from rix.config import parse_report_destinations
from rix.index.schema import jobs
from rix.jobs.worker import Workers
from rix.serve import job_handlers
from rix.workflow import oru, report_claims, report_versions, reports
from tests.peers.server import free_port
from tests.routing.index import wait_for
from tests.workflow import reporting_region
from tests.workflow.mllp_receiver import Receiver, segment
from tests.workflow.reporting_region import Studies, forget_reporting, principal

PORT = free_port()


@pytest.fixture(scope="module")
def region(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Archive, Studies]]:
    destinations = parse_report_destinations(f"B=127.0.0.1:{PORT}")
    folder = tmp_path_factory.mktemp("oru")
    with reporting_region.region(backend, folder, report_destinations=destinations) as found:
        yield found


@pytest.fixture
def archive(region: tuple[Archive, Studies]) -> Archive:
    forget_reporting(region[0])
    return region[0]


@pytest.fixture
def found(region: tuple[Archive, Studies]) -> Studies:
    return region[1]


def sign(archive: Archive, study_uid: str, action: str, text: str) -> report_versions.Report:
    me = principal(archive, "a.rad")
    report_claims.claim(archive, me, study_uid)
    return reports.save(archive, me, study_uid, action=action, text=text)


def oru_job(archive: Archive) -> Row[Any] | None:
    with archive.engine.connect() as conn:
        return conn.execute(select(jobs).where(jobs.c.kind == oru.KIND)).first()


def test_the_message_names_the_trusts_record_and_carries_the_order(
    archive: Archive, found: Studies
) -> None:
    text = "Lungs clear | no effusion.\nHeart ^ normal & size ~ fine."
    final = sign(archive, found.b_chest, "final", text)
    with archive.engine.connect() as conn:
        message = oru.message(conn, final.pk, text=text)
    msh, pid = segment(message, "MSH"), segment(message, "PID")
    orc, obr = segment(message, "ORC"), segment(message, "OBR")
    assert (msh[9], msh[10], msh[6], msh[12]) == ("ORU^R01^ORU_R01", f"RIXR{final.pk}", "B", "2.5")
    assert (pid[3], pid[5], pid[7]) == ("B-2^^^B-MRN^MR", "Report^Rita", "19700101")
    assert (orc[1], orc[2], orc[3]) == ("RE", "PL-77", "FL-88")
    assert (obr[2], obr[3], obr[4], obr[18], obr[25]) == (
        "PL-77",
        "FL-88",
        "XCHES^XR chest",
        "ACC-CXR",
        "F",
    )
    assert obr[32].startswith("a.rad^A.RAD")
    lines = [segment(message, "OBX", n) for n in range(2)]
    assert [(o[1], o[2], o[5], o[11]) for o in lines] == [
        ("1", "TX", "Lungs clear \\F\\ no effusion.", "F"),
        ("2", "TX", "Heart \\S\\ normal \\T\\ size \\R\\ fine.", "F"),
    ]
    with pytest.raises(IndexError):
        segment(message, "OBX", 2)


def test_a_report_reaches_a_receiver_that_was_down_for_a_while_exactly_once(
    archive: Archive, found: Studies
) -> None:
    receiver = Receiver(PORT)  # not listening yet
    final = sign(archive, found.b_knee, "final", "Intact menisci.")
    workers = Workers(archive, job_handlers(), 1).start()
    try:
        failed = wait_for(
            "the ORU^R01 to fail", lambda: (j := oru_job(archive)) and j.last_error and j
        )
        assert failed.state == "pending" and "no acknowledgement" in failed.last_error
        receiver.start()
        done = wait_for(
            "the ORU^R01 delivered", lambda: (j := oru_job(archive)) and j.state == "done" and j
        )
    finally:
        workers.stop()
        receiver.stop()
    assert done.attempts >= 2
    [message] = receiver.received
    assert segment(message, "MSH")[10] == f"RIXR{final.pk}"
    assert segment(message, "OBX")[5] == "Intact menisci."


def test_an_error_answer_is_retried_until_the_receiver_accepts(
    archive: Archive, found: Studies
) -> None:
    receiver = Receiver(PORT, answers=["AE"]).start()
    prelim = sign(archive, found.b_knee, "preliminary", "Probable tear.")
    workers = Workers(archive, job_handlers(), 1).start()
    try:
        done = wait_for(
            "the ORU^R01 accepted", lambda: (j := oru_job(archive)) and j.state == "done" and j
        )
    finally:
        workers.stop()
        receiver.stop()
    assert done.attempts == 2
    first, second = receiver.received
    assert segment(first, "MSH")[10] == segment(second, "MSH")[10] == f"RIXR{prelim.pk}"
    assert segment(second, "OBR")[25] == "P"


def test_destinations_are_trust_host_and_port() -> None:
    found = parse_report_destinations(" ngh=ris.ngh.example:2575, EMH=[::1]:6661 ")
    assert found["NGH"].address == "ris.ngh.example:2575"
    assert found["EMH"].address == "[::1]:6661"
    for bad in ("NGH", "NGH=host", "NGH=host:0", "=host:1"):
        with pytest.raises(ValueError, match="TRUST=host:port"):
            parse_report_destinations(bad)
