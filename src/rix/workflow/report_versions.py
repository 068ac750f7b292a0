"""Report versions: written by radiologists, never edited once signed.

A report is rows of ``reports``, one per version. A radiologist holding the study's claim
(``rix.workflow.report_claims``) keeps one unsigned draft, saved as often as they like;
signing (``rix.workflow.reports``) turns it into a preliminary or a final report. Once a
final is signed nothing signed changes: what follows is an addendum (words added) or a
corrected report (the whole text again), each a new row naming its parent. So what a
clinician read, and what went out, can always be shown as it was.

This module is what every reader of reports shares (the editor, the study page, the
worklist's status, turnaround's clock, the SR and ORU^R01 jobs); it changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, select

from rix.access import Principal
from rix.errors import NotFound
from rix.index.schema import users
from rix.index.workflow_tables import reports


class Version(StrEnum):
    """``reports.status``: a draft, then what signing made it."""

    DRAFT = "draft"
    PRELIMINARY = "preliminary"
    FINAL = "final"
    ADDENDUM = "addendum"
    CORRECTED = "corrected"


# a final and what may follow it: the study is reported, and each is stored as an SR
FINALS = (Version.FINAL, Version.ADDENDUM, Version.CORRECTED)
AFTER_FINAL = (Version.ADDENDUM, Version.CORRECTED)
# every signed version: what stops turnaround's clock
SIGNED = (Version.PRELIMINARY, *FINALS)


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


def statuses_of(conn: Connection, study_uids: Iterable[str]) -> dict[str, str]:
    """The newest signed report status of each study that has one (the timeline's
    column): preliminary, final, addendum or corrected."""
    wanted = sorted(set(study_uids))
    if not wanted:
        return {}
    rows = conn.execute(
        select(reports.c.study_uid, reports.c.status)
        .where(reports.c.study_uid.in_(wanted), reports.c.signed_at.is_not(None))
        .order_by(reports.c.id)
    )
    return {r.study_uid: r.status for r in rows}
