"""Writing reports: a draft saved, then signed, by the radiologist holding the study's
claim; and reading them back for the editor, audited.

What a version is, and the rule that nothing signed is ever edited, is
``rix.workflow.report_versions``. Signing queues, in the same transaction, what goes out
of a signed version (``rix.workflow.report_delivery``): a signed final, addendum or
correction is stored in the study as a DICOM Basic Text SR, and every signed version goes
to the study's trust as HL7 ORU^R01, so a crash or a destination that is down loses
neither.
"""

from __future__ import annotations

import re
import time
from typing import Any

from pydicom.uid import generate_uid
from sqlalchemy import Connection, insert, select, update

from rix import audit
from rix.access import Principal, radiology, trail
from rix.archive import Archive
from rix.errors import Conflict, NotFound
from rix.index.database import begin_write
from rix.index.schema import studies, trusts
from rix.index.workflow_tables import reports
from rix.jobs import queue
from rix.workflow import report_claims, report_delivery
from rix.workflow.orders import study_order_pk
from rix.workflow.report_versions import (
    AFTER_FINAL,
    FINALS,
    Report,
    Version,
    draft_of,
    get,
    versions,
)

MAX_TEXT = 100_000  # characters: a long report is a few thousand
# C0 controls but tab and line ends: no DICOM text (PS3.5 6.1.3) nor HL7 field holds them
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _check(action: Version, chain: list[Report], text: str) -> None:
    finals = [r for r in chain if r.status in FINALS]
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
    """The study's order (``orders.study_order_pk``): the one its ORU^R01 answers."""
    found = conn.execute(select(study_order_pk(study_uid))).scalar()
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
    if action in FINALS:
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
    radiology.require_reporter(principal)
    text = text.replace("\r\n", "\n")
    with begin_write(archive.engine) as conn:
        who = report_claims.touched(conn, study_uid)
        report_claims.reportable(archive, conn, principal, study_uid)
        if not report_claims.holds(conn, principal, study_uid):
            holder = report_claims.claim_of(conn, study_uid)
            raise Conflict(
                "claim the study before writing its report"
                if holder is None
                else f"this study is being reported by {holder.username}"
            )
        template = CONTROL.sub("", template)[:64]
        pk = _write(conn, principal, study_uid, action=version, text=text, template=template)
        if version is Version.DRAFT:
            report_claims.hold(conn, principal, study_uid, archive.settings.display_timezone)
        else:
            report_claims.release_in(conn, principal, study_uid)
            trust_pk, code = _study_trust(conn, study_uid)
            report_delivery.queue_jobs(
                conn, archive.settings, pk, version, trust_pk=trust_pk, trust=code
            )
        detail = {"report": version.value, "report_id": pk}
        trail.record_in(conn, principal, audit.Kind.STORE, audit.Outcome.SUCCESS, who, detail)
        saved = get(conn, pk)
    queue.wake()  # committed: this process's workers may take the SR and the ORU^R01 now
    return saved


def read(archive: Archive, principal: Principal, study_uid: str) -> list[Report]:
    """The versions a radiologist working on the study sees: every signed one and their
    own draft (one audited read)."""
    radiology.require_reporter(principal)
    with archive.engine.connect() as conn:
        who = report_claims.touched(conn, study_uid)
        report_claims.reportable(archive, conn, principal, study_uid)
        found = [r for r in versions(conn, study_uid) if r.signed or r.author == principal.name]
    trail.record(
        archive.writer.post,
        principal,
        audit.Kind.RETRIEVE,
        audit.Outcome.SUCCESS,
        who,
        {"report": "read", "versions": len(found)},
    )
    return found
