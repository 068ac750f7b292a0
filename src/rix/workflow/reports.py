"""Reports: versions written by radiologists, never edited once signed.

A report is rows of ``reports``, one per version. A radiologist holding the study's claim
(``rix.workflow.reporting``) keeps one unsigned draft, saved as often as they like;
signing turns it into a preliminary or a final report. Once a final is signed nothing
signed changes: what follows is an addendum (words added) or a corrected report (the
whole text again), each a new row naming its parent. So what a clinician read, and what
went out, can always be shown as it was.

A signed final, addendum or correction is stored in the study as a DICOM Basic Text SR
(``rix.sr``, through the one ingest path, as the study's trust) and every signed version
goes to the study's trust as HL7 ORU^R01 (``rix.hl7.oru``): both are jobs queued in the
transaction that signs, so a crash or a destination that is down loses neither.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydicom.uid import generate_uid
from sqlalchemy import Connection, insert, select, update

from rix import access, audit
from rix.access import Principal
from rix.archive import Archive
from rix.errors import Conflict, NotFound
from rix.index.database import begin_write
from rix.index.schema import (
    instances,
    orders,
    report_templates,
    reports,
    series,
    studies,
    trusts,
    users,
)
from rix.ingest import sr
from rix.jobs import queue
from rix.jobs.worker import Context
from rix.workflow import oru, reporting_worklist

STORE_KIND = "report-sr"
MAX_TEXT = 100_000  # characters: a long report is a few thousand
# C0 controls but tab and line ends: no DICOM text (PS3.5 6.1.3) nor HL7 field holds them
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class Version(StrEnum):
    """``reports.status``: a draft, then what signing made it."""

    DRAFT = "draft"
    PRELIMINARY = "preliminary"
    FINAL = "final"
    ADDENDUM = "addendum"
    CORRECTED = "corrected"


AFTER_FINAL = (Version.ADDENDUM, Version.CORRECTED)
STORED_AS_SR = (Version.FINAL, Version.ADDENDUM, Version.CORRECTED)
SERIES_DESCRIPTION = {
    Version.FINAL: "Report",
    Version.ADDENDUM: "Report with addendum",
    Version.CORRECTED: "Corrected report",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    pk: int
    study_uid: str
    status: Version
    author: str  # user name
    author_name: str  # display name, or the user name
    template: str
    text: str
    parent_pk: int | None
    sr_instance_uid: str | None
    created_at: float
    updated_at: float
    signed_at: float | None

    @classmethod
    def from_row(cls, row: Any) -> Report:
        return cls(
            pk=row.id,
            study_uid=row.study_uid,
            status=Version(row.status),
            author=row.username or "",
            author_name=row.display_name or row.username or "",
            template=row.template,
            text=row.text,
            parent_pk=row.parent_pk,
            sr_instance_uid=row.sr_instance_uid,
            created_at=row.created_at,
            updated_at=row.updated_at,
            signed_at=row.signed_at,
        )

    @property
    def signed(self) -> bool:
        return self.signed_at is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.pk,
            "study_uid": self.study_uid,
            "status": self.status.value,
            "author": self.author,
            "author_name": self.author_name,
            "template": self.template,
            "text": self.text,
            "parent": self.parent_pk,
            "sr_instance_uid": self.sr_instance_uid,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "signed_at": self.signed_at,
        }


def _select() -> Any:
    return (
        select(reports, users.c.username, users.c.display_name)
        .outerjoin(users, users.c.id == reports.c.author_pk)
        .order_by(reports.c.id)
    )


def versions(conn: Connection, study_uid: str) -> list[Report]:
    """Every version of a study's report, drafts included, oldest first."""
    rows = conn.execute(_select().where(reports.c.study_uid == study_uid))
    return [Report.from_row(r) for r in rows]


def signed_versions(conn: Connection, study_uid: str) -> list[Report]:
    """What may be read beside the images: the signed versions, oldest first."""
    return [r for r in versions(conn, study_uid) if r.signed]


def get(conn: Connection, pk: int) -> Report:
    row = conn.execute(_select().where(reports.c.id == pk)).first()
    if row is None:
        raise NotFound(f"no report {pk}")
    return Report.from_row(row)


def current_text(chain: list[Report], report: Report) -> str:
    """The report as it stands at ``report``: an addendum is read after the final (or
    correction) it adds to, with every addendum before it; anything else is its text."""
    if report.status is not Version.ADDENDUM:
        return report.text
    earlier = [r for r in chain if r.signed and r.pk <= report.pk]
    base = next(
        (r for r in reversed(earlier) if r.status in (Version.FINAL, Version.CORRECTED)), None
    )
    parts = [] if base is None else [base.text.rstrip()]
    for added in earlier:
        if added.status is Version.ADDENDUM and (base is None or added.pk > base.pk):
            when = time.strftime("%d/%m/%Y %H:%M", time.localtime(added.signed_at or 0))
            parts.append(f"ADDENDUM ({added.author_name}, {when}):\n{added.text.rstrip()}")
    return "\n\n".join(parts)


def draft_of(conn: Connection, principal: Principal, study_uid: str) -> Report | None:
    """``principal``'s unsigned draft of the study, if they have one."""
    for report in reversed(versions(conn, study_uid)):
        if report.status is Version.DRAFT and report.author == principal.name:
            return report
    return None


def _check(action: Version, chain: list[Report], text: str) -> None:
    finals = [r for r in chain if r.status in STORED_AS_SR]
    if action in (Version.PRELIMINARY, Version.FINAL) and finals:
        raise Conflict("a final report is signed: add an addendum or sign a corrected report")
    if action in AFTER_FINAL and not finals:
        raise Conflict(f"an {action.value} follows a signed final report")
    if action is not Version.DRAFT and not text.strip():
        raise Conflict("a signed report needs text")
    if len(text) > MAX_TEXT:
        raise Conflict(f"a report is at most {MAX_TEXT:,} characters")
    if CONTROL.search(text):
        raise Conflict("a report's text holds control characters")


def _order_of(conn: Connection, study_uid: str) -> int | None:
    found = conn.execute(
        select(orders.c.id)
        .where(orders.c.study_uid == study_uid, orders.c.status != "cancelled")
        .order_by(orders.c.id)
    ).scalar()
    return None if found is None else int(found)


def _study_trust(conn: Connection, study_uid: str) -> tuple[int | None, str]:
    row = conn.execute(
        select(studies.c.trust_pk, trusts.c.code)
        .outerjoin(trusts, trusts.c.id == studies.c.trust_pk)
        .where(studies.c.study_uid == study_uid)
    ).first()
    if row is None:
        raise NotFound("no such study")
    return row.trust_pk, row.code or ""


def _write(
    conn: Connection,
    principal: Principal,
    study_uid: str,
    *,
    action: Version,
    text: str,
    template: str,
) -> int:
    """Insert or update ``principal``'s draft, signed as ``action`` unless a draft; the
    UPDATE names an unsigned row, so nothing signed is ever changed."""
    chain = versions(conn, study_uid)
    _check(action, chain, text)
    now = time.time()
    signed = [r for r in chain if r.signed]
    values: dict[str, Any] = {
        "status": action.value,
        "text": text,
        "template": template,
        "updated_at": now,
        "parent_pk": signed[-1].pk if signed else None,
    }
    if action is not Version.DRAFT:
        values["signed_at"] = now
    if action in STORED_AS_SR:
        values["sr_instance_uid"] = str(generate_uid())
    draft = draft_of(conn, principal, study_uid)
    if draft is not None:
        conn.execute(
            update(reports)
            .where(reports.c.id == draft.pk, reports.c.signed_at.is_(None))
            .values(**values)
        )
        return draft.pk
    trust_pk, _code = _study_trust(conn, study_uid)
    return int(
        conn.execute(
            insert(reports)
            .values(
                study_uid=study_uid,
                order_pk=_order_of(conn, study_uid),
                trust_pk=trust_pk,
                author_pk=principal.user_pk,
                created_at=now,
                **values,
            )
            .returning(reports.c.id)
        ).scalar_one()
    )


def save(
    archive: Archive,
    principal: Principal,
    study_uid: str,
    *,
    action: str,
    text: str,
    template: str = "",
) -> Report:
    """Save a draft, or sign: preliminary or final, and after a final an addendum or a
    correction. The radiologist must hold the study's claim (saving renews it; signing
    gives it back). Signing queues the SR and the ORU^R01 in the same transaction."""
    try:
        version = Version(action)
    except ValueError:
        raise Conflict(f"a report is saved as one of {', '.join(Version)}") from None
    access.require_reporter(principal)
    text = text.replace("\r\n", "\n")
    with begin_write(archive.engine) as conn:
        who = reporting_worklist.touched(conn, study_uid)
        reporting_worklist.reportable(archive, conn, principal, study_uid)
        if not reporting_worklist.holds(conn, principal, study_uid):
            holder = reporting_worklist.claim_of(conn, study_uid)
            raise Conflict(
                "claim the study before writing its report"
                if holder is None
                else f"this study is being reported by {holder.username}"
            )
        template = CONTROL.sub("", template)[:64]
        pk = _write(conn, principal, study_uid, action=version, text=text, template=template)
        if version is Version.DRAFT:
            reporting_worklist.hold(conn, principal, study_uid)
        else:
            reporting_worklist.release_in(conn, principal, study_uid)
            _distribute(conn, archive, pk, study_uid, version)
        detail = {"report": version.value, "report_id": pk}
        access.record_in(conn, principal, audit.Kind.STORE, audit.Outcome.SUCCESS, who, detail)
        saved = get(conn, pk)
    queue.wake()  # committed: this process's workers may take the SR and the ORU^R01 now
    return saved


def _distribute(
    conn: Connection, archive: Archive, pk: int, study_uid: str, version: Version
) -> None:
    """The jobs of a signed version: the SR in the study, the ORU^R01 to its trust."""
    trust_pk, code = _study_trust(conn, study_uid)
    priority = queue.Priority.URGENT
    if version in STORED_AS_SR:
        queue.enqueue(
            conn,
            STORE_KIND,
            {"report": pk},
            priority=priority,
            label=f"report {pk}: SR in its study",
            trust_pk=trust_pk,
        )
    oru.enqueue(conn, archive.settings, report_pk=pk, trust=code, trust_pk=trust_pk)


def read(archive: Archive, principal: Principal, study_uid: str) -> list[Report]:
    """The versions a radiologist working on the study sees: every signed one and their
    own draft (one audited read)."""
    access.require_reporter(principal)
    with archive.engine.connect() as conn:
        who = reporting_worklist.touched(conn, study_uid)
        reporting_worklist.reportable(archive, conn, principal, study_uid)
        found = [r for r in versions(conn, study_uid) if r.signed or r.author == principal.name]
    access.record(
        archive.writer.post,
        principal,
        audit.Kind.RETRIEVE,
        audit.Outcome.SUCCESS,
        who,
        {"report": "read", "versions": len(found)},
    )
    return found


# --- the SR in the study (a job) ---


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
        if r.pk < report.pk and r.status in STORED_AS_SR and r.sr_instance_uid is not None
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
    chosen when it was signed: a job run again finds it stored and stops."""
    archive = ctx.archive
    with archive.engine.connect() as conn:
        report = get(conn, int(ctx.job.payload["report"]))
        if report.sr_instance_uid is None or report.status not in STORED_AS_SR:
            raise queue.Permanent(f"report {report.pk} is not stored as an SR")
        if _stored(conn, report.sr_instance_uid):
            return
        chain = versions(conn, report.study_uid)
        organisation = conn.execute(
            select(trusts.c.name)
            .join(studies, studies.c.trust_pk == trusts.c.id)
            .where(studies.c.study_uid == report.study_uid)
        ).scalar()
        ds = sr.text_document(
            conn,
            study_uid=report.study_uid,
            text=current_text(chain, report),
            author=report.author_name,
            organisation=organisation or "",
            final=True,
            series_description=SERIES_DESCRIPTION[report.status],
            sop_instance_uid=report.sr_instance_uid,
            predecessors=_predecessor(conn, chain, report),
        )
    sr.store(archive, ds, source="report")


# --- the ORU^R01 to the study's trust (a job) ---


def send_oru(ctx: Context) -> None:
    """Build the version's ORU^R01 from the index when the job runs and deliver it; only
    an AA finishes the job (``rix.hl7.oru``)."""
    payload = ctx.job.payload
    report_pk = int(payload["report"])
    with ctx.archive.engine.connect() as conn:
        report = get(conn, report_pk)
        text = current_text(versions(conn, report.study_uid), report)
        body = oru.message(conn, report_pk, text=text)
    timeout = ctx.archive.settings.dicom_timeout
    oru.deliver(str(payload["host"]), int(payload["port"]), body, timeout=timeout)


# --- templates ---


@dataclass(frozen=True, slots=True, kw_only=True)
class Template:
    name: str
    modality: str  # '' any
    body_part: str  # '' any
    text: str


def _sections(*lines: str) -> str:
    """A template's text: its lines, a blank line between, each heading ending in a
    colon for the radiologist to write after."""
    return "\n\n".join(line if line.endswith(".") else f"{line}:" for line in lines) + "\n"


DEFAULT_TEMPLATES = (
    Template(
        name="CT head",
        modality="CT",
        body_part="HEAD",
        text=_sections(
            "Clinical details",
            "Technique: non-contrast CT of the head.",
            "Brain parenchyma and grey-white differentiation",
            "Ventricles and extra-axial spaces",
            "Bones, sinuses and mastoids",
            "Conclusion",
        ),
    ),
    Template(
        name="CT chest",
        modality="CT",
        body_part="CHEST",
        text=_sections(
            "Clinical details",
            "Technique: CT of the chest.",
            "Lungs and airways",
            "Pleura",
            "Mediastinum, hila and heart",
            "Upper abdomen, bones and soft tissues",
            "Conclusion",
        ),
    ),
    Template(
        name="CT abdomen and pelvis",
        modality="CT",
        body_part="ABDOMEN",
        text=_sections(
            "Clinical details",
            "Technique: CT of the abdomen and pelvis.",
            "Liver, gallbladder, pancreas, spleen, adrenals",
            "Kidneys and bladder",
            "Bowel and peritoneum",
            "Lymph nodes and vessels",
            "Bones and lung bases",
            "Conclusion",
        ),
    ),
    Template(
        name="MR knee",
        modality="MR",
        body_part="KNEE",
        text=_sections(
            "Clinical details",
            "Technique: MR of the knee.",
            "Menisci",
            "Cruciate and collateral ligaments",
            "Extensor mechanism",
            "Articular cartilage and bone marrow",
            "Effusion and soft tissues",
            "Conclusion",
        ),
    ),
    Template(
        name="MR brain",
        modality="MR",
        body_part="BRAIN",
        text=_sections(
            "Clinical details",
            "Technique: MR of the brain.",
            "Brain parenchyma and white matter",
            "Ventricles and extra-axial spaces",
            "Posterior fossa and craniocervical junction",
            "Conclusion",
        ),
    ),
    Template(
        name="CR chest",
        modality="CR",
        body_part="CHEST",
        text=_sections(
            "Clinical details",
            "Projection",
            "Lungs and pleura",
            "Heart and mediastinum",
            "Bones and soft tissues",
            "Conclusion",
        ),
    ),
    Template(
        name="US abdomen",
        modality="US",
        body_part="ABDOMEN",
        text=_sections(
            "Clinical details",
            "Liver",
            "Gallbladder and bile ducts",
            "Pancreas and spleen",
            "Kidneys",
            "Conclusion",
        ),
    ),
    Template(
        name="General",
        modality="",
        body_part="",
        text=_sections("Clinical details", "Technique", "Findings", "Conclusion"),
    ),
)


def _seed(conn: Connection) -> None:
    """The defaults, once, into an empty table: afterwards the table is the region's to
    edit, and a template deleted there stays deleted."""
    if conn.execute(select(report_templates.c.id).limit(1)).first() is not None:
        return
    now = time.time()
    conn.execute(
        insert(report_templates),
        [
            {
                "name": t.name,
                "modality": t.modality,
                "body_part": t.body_part,
                "text": t.text,
                "updated_at": now,
            }
            for t in DEFAULT_TEMPLATES
        ],
    )


def templates(archive: Archive) -> list[Template]:
    """Every report template, the defaults seeded into the table on first use."""
    with archive.engine.connect() as conn:
        rows = conn.execute(select(report_templates).order_by(report_templates.c.name)).all()
    if not rows:
        with begin_write(archive.engine) as conn:
            _seed(conn)
            rows = conn.execute(select(report_templates).order_by(report_templates.c.name)).all()
    return [
        Template(name=r.name, modality=r.modality, body_part=r.body_part, text=r.text) for r in rows
    ]


def template_for(
    found: list[Template], *, modalities: list[str], body_part: str
) -> Template | None:
    """The template that fits a study best: its modality and body part, else its
    modality with any body part, else one for any study."""
    part = body_part.upper()
    wanted = {m.upper() for m in modalities}

    def fits(t: Template) -> int:
        if t.modality and t.modality.upper() not in wanted:
            return -1
        if t.body_part and t.body_part.upper() != part:
            return -1
        return (2 if t.modality else 0) + (1 if t.body_part else 0)

    ranked = sorted(((fits(t), t.name, t) for t in found), key=lambda x: (-x[0], x[1]))
    return ranked[0][2] if ranked and ranked[0][0] >= 0 else None


def series_body_part(conn: Connection, study_uid: str) -> str:
    """The Body Part Examined a study's series name (the first one)."""
    found = conn.execute(
        select(series.c.body_part)
        .join(studies, studies.c.id == series.c.study_pk)
        .where(studies.c.study_uid == study_uid, series.c.body_part != "")
        .order_by(series.c.id)
    ).scalar()
    return str(found or "")
