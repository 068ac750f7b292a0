"""What goes out of a signed report version, as jobs: the SR in its study, the ORU^R01 to
its trust.

A signed final, addendum or correction is stored in the study as a DICOM Basic Text SR
(``rix.ingest.sr``, through the one ingest path, as the study's trust) and, with
``report_pdf`` on, as an Encapsulated PDF (``rix.ingest.pdf``); every signed
version goes to the study's trust as HL7 ORU^R01 (``rix.workflow.oru``). Both are queued
(``queue_jobs``) in the transaction that signs (``rix.workflow.reports``), so a crash or a
destination that is down loses neither, and both build what they send from the index
when they run, so a retry sends the version as it was signed.
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from rix.config import Settings
from rix.index.schema import instances, series, studies, trusts
from rix.ingest import pdf, sr
from rix.jobs import queue
from rix.jobs.worker import Context
from rix.workflow import mllp_client, oru
from rix.workflow.report_versions import FINALS, Report, Version, current_text, get, versions

STORE_KIND = "report-sr"
SERIES_DESCRIPTION = {
    Version.FINAL: "Report",
    Version.ADDENDUM: "Report with addendum",
    Version.CORRECTED: "Corrected report",
}


def queue_jobs(
    conn: Connection,
    settings: Settings,
    report_pk: int,
    version: Version,
    *,
    trust_pk: int | None,
    trust: str,
) -> None:
    """The jobs of a signed version, in the caller's transaction: the SR in the study (a
    final and what follows it), the ORU^R01 to its trust (when it has a destination)."""
    if version in FINALS:
        queue.enqueue(
            conn,
            STORE_KIND,
            {"report": report_pk},
            priority=queue.Priority.URGENT,
            label=f"report {report_pk}: SR in its study",
            trust_pk=trust_pk,
        )
    oru.enqueue(conn, settings, report_pk=report_pk, trust=trust, trust_pk=trust_pk)


# --- the SR in the study ---


def _stored(conn: Connection, sop_uid: str) -> bool:
    return (
        conn.execute(select(instances.c.id).where(instances.c.sop_uid == sop_uid)).first()
        is not None
    )


def _predecessor(conn: Connection, chain: list[Report], report: Report) -> list[sr.Reference]:
    """The stored SR of the version an addendum or correction follows (none for a first
    final, or while that one's own job has not stored it yet)."""
    earlier = [
        r
        for r in chain
        if r.pk < report.pk and r.status in FINALS and r.sr_instance_uid is not None
    ]
    if report.status is Version.FINAL or not earlier:
        return []
    row = conn.execute(
        select(instances.c.sop_class_uid, series.c.series_uid)
        .join(series, series.c.id == instances.c.series_pk)
        .where(instances.c.sop_uid == earlier[-1].sr_instance_uid)
    ).first()
    if row is None:
        return []
    return [
        sr.Reference(
            sop_class_uid=row.sop_class_uid,
            sop_instance_uid=str(earlier[-1].sr_instance_uid),
            series_uid=row.series_uid,
        )
    ]


def store_sr(ctx: Context) -> None:
    """Store a signed version in its study as a Basic Text SR, under the SOP Instance UID
    chosen when it was signed, and (``report_pdf``) as an Encapsulated PDF under one made
    from it: a job run again finds them stored and stops."""
    archive = ctx.archive
    documents = []
    with archive.engine.connect() as conn:
        report = get(conn, int(ctx.job.payload["report"]))
        if report.sr_instance_uid is None or report.status not in FINALS:
            raise queue.Permanent(f"report {report.pk} is not stored as an SR")
        pdf_uid = pdf.instance_uid_for(report.sr_instance_uid)
        wanted_sr = not _stored(conn, report.sr_instance_uid)
        wanted_pdf = archive.settings.report_pdf and not _stored(conn, pdf_uid)
        if not (wanted_sr or wanted_pdf):
            return
        chain = versions(conn, report.study_uid)
        text = current_text(chain, report)
        organisation = conn.execute(
            select(trusts.c.name)
            .join(studies, studies.c.trust_pk == trusts.c.id)
            .where(studies.c.study_uid == report.study_uid)
        ).scalar()
        if wanted_sr:
            documents.append(
                sr.text_document(
                    conn,
                    study_uid=report.study_uid,
                    text=text,
                    author=report.author_name,
                    organisation=organisation or "",
                    final=True,
                    series_description=SERIES_DESCRIPTION[report.status],
                    sop_instance_uid=report.sr_instance_uid,
                    predecessors=_predecessor(conn, chain, report),
                )
            )
        if wanted_pdf:
            documents.append(
                pdf.report_document(
                    conn,
                    study_uid=report.study_uid,
                    text=text,
                    author=report.author_name,
                    organisation=organisation or "",
                    document_title=SERIES_DESCRIPTION[report.status],
                    sop_instance_uid=pdf_uid,
                )
            )
    for ds in documents:
        sr.store(archive, ds, source="report")


# --- the ORU^R01 to the study's trust ---


def send_oru(ctx: Context) -> None:
    """Build the version's ORU^R01 from the index when the job runs and deliver it; only
    an AA finishes the job (``rix.workflow.oru``)."""
    payload = ctx.job.payload
    report_pk = int(payload["report"])
    with ctx.archive.engine.connect() as conn:
        report = get(conn, report_pk)
        text = current_text(versions(conn, report.study_uid), report)
        body = oru.message(conn, report_pk, text=text)
    timeout = ctx.archive.settings.dicom_timeout
    mllp_client.deliver(str(payload["host"]), int(payload["port"]), body, timeout=timeout)
