"""Reports out as HL7 v2.5 ORU^R01 (chapter 7, unsolicited observation) over MLLP.

Each trust's RIS or EPR gets its own trust's reports (``report_destinations``:
``TRUST=host:port``), and only those: the message names the patient by the trust's own
hospital number. A signed report queues one ``report-oru`` job per destination in the
transaction that signs it; the job builds the message from the index when it runs and
sends it, and only an AA acknowledgement finishes it. AE, AR, a refused connection or no
answer are retried with the job queue's back-off (``rix.jobs.queue``) until
``job_give_up_hours``, then dead-lettered with an alert.

MSH-10 (the message control ID) is the report version's, the same on every attempt, so a
receiver that got a message whose ACK was lost can recognise the repeat (HL7 v2.5
2.10.2: the sender retries; the receiver detects duplicates by control ID).

Segments: PID from the study's local record (PID-3 the hospital number with the trust's
issuer, and the NHS number when known), ORC/OBR with the placer and filler order numbers
and the accession number (OBR-18, as IHE Radiology Scheduled Workflow places it), one
OBX of type TX per line of text, and the result status P (preliminary), F (final) or C
(an addendum or a correction replaces what was sent) in OBR-25 and OBX-11.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, select

from rix.audit.messages import hl7_escape
from rix.config import Settings
from rix.errors import NotFound
from rix.index.schema import patients, studies, trusts, users
from rix.index.workflow_tables import orders, reports
from rix.jobs import queue
from rix.workflow.report_versions import Version

KIND = "report-oru"
RESULT_STATUS = {
    Version.PRELIMINARY: "P",
    Version.FINAL: "F",
    Version.ADDENDUM: "C",
    Version.CORRECTED: "C",
}
REPORT_CODE = "18782-3^Radiology Study observation (narrative)^LN"


class NotSigned(ValueError):
    """A report version with no ORU^R01: a draft, or no such signed version."""


def enqueue(
    conn: Connection, settings: Settings, *, report_pk: int, trust: str, trust_pk: int | None
) -> int | None:
    """Queue the ORU^R01 of a signed report for its trust's destination, if it has one."""
    destination = settings.report_destinations.get(trust.upper())
    if destination is None:
        return None
    return queue.enqueue(
        conn,
        KIND,
        {"report": report_pk, "host": destination.host, "port": destination.port},
        priority=queue.Priority.URGENT,
        label=f"report {report_pk}: ORU^R01 to {trust} ({destination.address})",
        trust_pk=trust_pk,
    )


# --- the message ---


def _ts(moment: float | None) -> str:
    """HL7 TS: local time with its offset from UTC."""
    return "" if moment is None else time.strftime("%Y%m%d%H%M%S%z", time.localtime(moment))


def _segment(name: str, fields: dict[int, str]) -> str:
    """A segment from its fields by number (HL7 counts from 1 after the segment name)."""
    last = max(fields) if fields else 0
    return "|".join([name, *(fields.get(n, "") for n in range(1, last + 1))])


def _person(dicom_name: str) -> str:
    """A DICOM PN (family^given^middle^prefix^suffix) as an HL7 XPN
    (family^given^middle^suffix^prefix), each component escaped."""
    parts = (dicom_name.split("=", maxsplit=1)[0].split("^") + [""] * 5)[:5]
    family, given, middle, prefix, suffix = (hl7_escape(p) for p in parts)
    return "^".join([family, given, middle, suffix, prefix]).rstrip("^")


def _da(value: str) -> str:
    return value if len(value) == 8 and value.isdigit() else ""


def _report_row(conn: Connection, report_pk: int) -> Any:
    row = conn.execute(
        select(
            reports,
            studies.c.study_date,
            studies.c.study_time,
            studies.c.study_description,
            studies.c.accession_number.label("study_accession"),
            patients.c.patient_id,
            patients.c.issuer,
            patients.c.patient_name,
            patients.c.birth_date,
            patients.c.sex,
            patients.c.nhs_number,
            trusts.c.code.label("trust"),
            users.c.username,
            users.c.display_name,
        )
        .join(studies, studies.c.study_uid == reports.c.study_uid)
        .join(patients, patients.c.id == studies.c.patient_pk)
        .outerjoin(trusts, trusts.c.id == reports.c.trust_pk)
        .outerjoin(users, users.c.id == reports.c.author_pk)
        .where(reports.c.id == report_pk)
    ).first()
    if row is None:
        raise NotFound(f"no report {report_pk}")
    return row


def _order(conn: Connection, order_pk: int | None) -> Any:
    if order_pk is None:
        return None
    return conn.execute(select(orders).where(orders.c.id == order_pk)).first()


def control_id(report_pk: int) -> str:
    return f"RIXR{report_pk}"


def _pid(row: Any) -> str:
    ids = [f"{hl7_escape(row.patient_id)}^^^{hl7_escape(row.issuer)}^MR"]
    if row.nhs_number:
        ids.append(f"{hl7_escape(row.nhs_number)}^^^NHS^NH")
    sex = row.sex.upper() if row.sex.upper() in ("M", "F", "O", "U") else "U"
    return _segment(
        "PID",
        {1: "1", 3: "~".join(ids), 5: _person(row.patient_name), 7: _da(row.birth_date), 8: sex},
    )


def _orc_obr(row: Any, order: Any, status: str) -> list[str]:
    placer = hl7_escape(order.placer_number) if order is not None else ""
    filler = hl7_escape(order.filler_number) if order is not None else ""
    accession = hl7_escape(order.accession_number if order is not None else row.study_accession)
    accession = accession or hl7_escape(row.study_accession)
    service = "^" + hl7_escape(row.study_description)
    if order is not None and (order.procedure_code or order.procedure_text):
        service = f"{hl7_escape(order.procedure_code)}^{hl7_escape(order.procedure_text)}"
    author = f"{hl7_escape(row.username or '')}^{_person(row.display_name or '')}"
    observed = _da(row.study_date) + "".join(c for c in row.study_time if c.isdigit())[:6]
    orc = _segment("ORC", {1: "RE", 2: placer, 3: filler, 5: "CM"})
    obr = _segment(
        "OBR",
        {
            1: "1",
            2: placer,
            3: filler,
            4: service,
            7: observed,
            16: _person(order.ordering_provider) if order is not None else "",
            18: accession,
            19: hl7_escape(order.requested_procedure_id) if order is not None else "",
            22: _ts(row.signed_at),
            25: status,
            32: author,
        },
    )
    return [orc, obr]


def message(conn: Connection, report_pk: int, *, text: str) -> str:
    """The ORU^R01 of a signed report version, ``text`` being the report as it stands
    (an addendum with the report it adds to)."""
    row = _report_row(conn, report_pk)
    if row.signed_at is None or row.status not in RESULT_STATUS:
        raise NotSigned(f"report {report_pk} is not signed")
    status = RESULT_STATUS[row.status]
    header = _segment(
        "MSH",
        {
            1: "^~\\&",
            2: "RIX",
            3: "RIX",
            5: hl7_escape(row.trust or ""),
            6: _ts(time.time()),
            8: "ORU^R01^ORU_R01",
            9: control_id(report_pk),
            10: "P",
            11: "2.5",
        },
    )
    lines = text.replace("\r\n", "\n").split("\n")
    obx = [
        _segment(
            "OBX",
            {
                1: str(n),
                2: "TX",
                3: REPORT_CODE,
                5: hl7_escape(line),
                11: status,
                14: _ts(row.signed_at),
            },
        )
        for n, line in enumerate(lines, start=1)
    ]
    order = _order(conn, row.order_pk)
    return "\r".join([header, _pid(row), *_orc_obr(row, order, status), *obx]) + "\r"
