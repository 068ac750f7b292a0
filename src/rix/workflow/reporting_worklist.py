"""The one reporting worklist across trusts, and the claims radiologists hold on it.

A study needs a report when it holds images (a study of SR, PR, KO or DOC objects only
does not) and has no final report: none signed here (``rix.workflow.reports``) and no
report document stored from elsewhere (a text SR or an encapsulated PDF that is not a
second opinion). A radiologist's worklist spans their own trust and every trust it has a
sharing agreement with (``access.reporting_scope``): a shared reporting service shares
the backlog out, and the backlog is what must never go unseen. Listing a partner's study
does not open its images; claiming it does, while the claim lasts
(``access.scope``'s reporting ground), and a report the radiologist wrote keeps it open.

Where a study has an order (``orders.study_uid``, matched by the order workflow) its
priority, modality, body part, site and sub-specialty come from the order; otherwise from
the study itself (its series' modalities and Body Part Examined), with priority
outpatient. Items are sorted by how close they are to their turnaround target, overdue
first, so the most urgent work is at the top whichever filters are set.

A claim is one row of ``report_claims``, whose primary key is the study: two radiologists
claiming at once both INSERT, and the database lets exactly one in, on SQLite and on
PostgreSQL alike. A claim lasts ``CLAIM_SECONDS`` and is renewed while its holder works
on the report; an expired claim is anyone's to take.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from rix import access, audit
from rix.access import Principal
from rix.archive import Archive
from rix.config import Settings
from rix.errors import AccessDenied, Conflict, NotFound
from rix.index import queries
from rix.index.database import begin_write
from rix.index.schema import (
    instances,
    orders,
    patients,
    report_claims,
    reports,
    series,
    share_opinions,
    studies,
    trusts,
    users,
)
from rix.region.trusts import get_trust
from rix.workflow import turnaround
from rix.workflow.orders import Priority

CLAIM_SECONDS = 2 * 3600.0  # renewed by every save in the editor
LIMIT = 200
# objects that are about images, not images: a study of these alone is not reported
NOT_IMAGES = ("SR", "PR", "KO", "DOC")
# report documents from elsewhere (PS3.4 B.5): Basic Text, Enhanced and Comprehensive SR,
# Encapsulated PDF; dose reports (X-Ray Radiation Dose SR) are not reports
REPORT_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.88.11",
    "1.2.840.10008.5.1.4.1.1.88.22",
    "1.2.840.10008.5.1.4.1.1.88.33",
    "1.2.840.10008.5.1.4.1.1.104.1",
)
SIGNED_FINAL = ("final", "addendum", "corrected")


class Status(StrEnum):
    """Where a study stands on the worklist."""

    UNREPORTED = "unreported"
    CLAIMED = "claimed"  # a radiologist holds it (and may have a draft)
    PRELIMINARY = "preliminary"
    FINAL = "final"  # final here, or a report document stored from elsewhere


OPEN = (Status.UNREPORTED, Status.CLAIMED, Status.PRELIMINARY)


@dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    """The worklist's filters; empty means any. Codes and values compare case-blind."""

    trusts: tuple[str, ...] = ()
    site: str = ""
    modality: str = ""
    body_part: str = ""
    priority: str = ""
    subspecialty: str = ""
    statuses: tuple[Status, ...] = OPEN
    min_age_hours: float | None = None  # arrived at least this long ago
    max_age_hours: float | None = None  # arrived at most this long ago
    limit: int = LIMIT

    def __post_init__(self) -> None:
        if self.priority and self.priority.lower() not in set(Priority):
            raise Conflict(f"priority is one of {', '.join(Priority)}")
        if not 1 <= self.limit <= 1000:
            raise Conflict("limit is 1 to 1,000")

    @classmethod
    def of(
        cls,
        *,
        trusts: Sequence[str] = (),
        statuses: Sequence[str] = (),
        **given: Any,
    ) -> Filters:
        """Filters as a form or a query string gives them: blanks dropped, statuses by
        name (none: every status not final; ``all``: every status)."""
        names = [s.strip().lower() for s in statuses if s.strip()]
        chosen: tuple[Status, ...] = OPEN
        if "all" in names:
            chosen = tuple(Status)
        elif names:
            try:
                chosen = tuple(Status(n) for n in names)
            except ValueError:
                raise Conflict(f"status is one of {', '.join(Status)} or all") from None
        codes = tuple(c.strip().upper() for c in trusts if c.strip())
        kept = {k: v for k, v in given.items() if v is not None and v != ""}
        return cls(trusts=codes, statuses=chosen, **kept)


@dataclass(frozen=True, slots=True, kw_only=True)
class Item:
    """One study on the worklist."""

    study_uid: str
    trust: str
    site: str
    patient_name: str
    patient: str  # issuer/patient ID
    nhs_number: str
    description: str
    accession: str
    modalities: list[str]
    body_part: str
    priority: Priority
    subspecialty: str
    status: Status
    arrived_at: float
    due_at: float
    claimed_by: str = ""
    claim_expires_at: float | None = None
    order_pk: int | None = None
    now: float = field(default_factory=time.time)

    @property
    def age_seconds(self) -> float:
        return max(0.0, self.now - self.arrived_at)

    @property
    def overdue(self) -> bool:
        return self.status is not Status.FINAL and self.now > self.due_at

    def as_dict(self) -> dict[str, Any]:
        return {
            "study_uid": self.study_uid,
            "trust": self.trust,
            "site": self.site,
            "patient_name": self.patient_name,
            "patient": self.patient,
            "nhs_number": self.nhs_number,
            "description": self.description,
            "accession": self.accession,
            "modalities": self.modalities,
            "body_part": self.body_part,
            "priority": self.priority.value,
            "subspecialty": self.subspecialty,
            "status": self.status.value,
            "arrived_at": self.arrived_at,
            "due_at": self.due_at,
            "age_hours": round(self.age_seconds / 3600, 2),
            "overdue": self.overdue,
            "claimed_by": self.claimed_by,
            "claim_expires_at": self.claim_expires_at,
            "order": self.order_pk,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    study_uid: str
    username: str
    claimed_at: float
    expires_at: float


# --- turnaround targets ---


def _due(settings: Settings, arrived: Any, priority: Any) -> Any:
    """SQL: when an item falls due, its arrival plus its priority's target (the same
    clock as the turnaround dashboard's, ``rix.workflow.turnaround``)."""
    targets = {p.value: turnaround.target_seconds(settings, p.value) for p in Priority}
    return arrived + case(targets, value=priority, else_=targets[Priority.OUTPATIENT])


# --- the worklist ---


def _order_of_study() -> Any:
    """SQL: the study's order (the first one not cancelled), looked up by its index."""
    other = orders.alias("other_orders")  # not correlated with the outer join's orders
    return (
        select(func.min(other.c.id))
        .where(other.c.study_uid == studies.c.study_uid, other.c.status != "cancelled")
        .scalar_subquery()
    )


def _series_where(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    return exists(select(series.c.id).where(series.c.study_pk == studies.c.id, *conditions))


def reported_elsewhere() -> ColumnElement[bool]:
    """A report document stored in the study (from the trust's PACS, from media): not a
    second opinion (``rix.sharing``), which is advice, not the report."""
    opinions = select(share_opinions.c.sr_instance_uid).where(
        share_opinions.c.sr_instance_uid.is_not(None)
    )
    return exists(
        select(instances.c.id)
        .join(series, series.c.id == instances.c.series_pk)
        .where(
            series.c.study_pk == studies.c.id,
            series.c.modality.in_(("SR", "DOC")),
            instances.c.sop_class_uid.in_(REPORT_CLASSES),
            instances.c.sop_uid.not_in(opinions),
        )
    )


def _rank() -> Any:
    """SQL: 3 final (or later), 2 preliminary, 1 a draft, None nothing written here."""
    rank = case(
        (reports.c.status.in_(SIGNED_FINAL), 3),
        (reports.c.status == "preliminary", 2),
        else_=1,
    )
    return select(func.max(rank)).where(reports.c.study_uid == studies.c.study_uid)


def _status_condition(
    statuses: Sequence[Status], rank: Any, claimed: Any, elsewhere: Any
) -> ColumnElement[bool]:
    final = or_(rank == 3, elsewhere)
    not_signed = and_(func.coalesce(rank, 0) < 2, not_(elsewhere))
    each = {
        Status.FINAL: final,
        Status.PRELIMINARY: and_(rank == 2, not_(elsewhere)),
        Status.CLAIMED: and_(not_signed, claimed.is_not(None)),
        Status.UNREPORTED: and_(not_signed, claimed.is_(None)),
    }
    return or_(*(each[s] for s in dict.fromkeys(statuses)))


def _worklist_query(
    conn: Connection, settings: Settings, principal: Principal, filters: Filters, now: float
) -> Select[Any]:
    rank = _rank().scalar_subquery()
    elsewhere = reported_elsewhere()
    priority = func.coalesce(func.nullif(orders.c.priority, ""), Priority.OUTPATIENT.value)
    body_part = func.coalesce(
        func.nullif(orders.c.body_part, ""),
        select(func.max(series.c.body_part))
        .where(series.c.study_pk == studies.c.id, series.c.body_part != "")
        .scalar_subquery(),
        "",
    )
    due = _due(settings, studies.c.created_at, priority)
    query = (
        select(
            studies.c.study_uid,
            studies.c.created_at,
            studies.c.study_description,
            studies.c.accession_number,
            studies.c.modalities,
            trusts.c.code.label("trust"),
            patients.c.patient_name,
            patients.c.issuer,
            patients.c.patient_id,
            patients.c.nhs_number,
            orders.c.id.label("order_pk"),
            orders.c.site_code,
            orders.c.subspecialty,
            orders.c.modality.label("order_modality"),
            priority.label("priority"),
            body_part.label("body_part"),
            due.label("due_at"),
            rank.label("rank"),
            elsewhere.label("elsewhere"),
            users.c.username.label("claimed_by"),
            report_claims.c.expires_at.label("claim_expires_at"),
        )
        .select_from(studies)
        .join(patients, patients.c.id == studies.c.patient_pk)
        .join(trusts, trusts.c.id == studies.c.trust_pk)
        .outerjoin(orders, orders.c.id == _order_of_study())
        .outerjoin(
            report_claims,
            and_(
                report_claims.c.study_uid == studies.c.study_uid,
                report_claims.c.expires_at > now,
            ),
        )
        .outerjoin(users, users.c.id == report_claims.c.user_pk)
        .where(
            access.reporting_scope(principal),
            _series_where(series.c.modality.not_in(NOT_IMAGES)),
            _status_condition(filters.statuses, rank, report_claims.c.study_uid, elsewhere),
        )
        .order_by(due, studies.c.created_at, studies.c.id)
        .limit(filters.limit)
    )
    return _filtered(conn, query, filters, priority, now)


def _filtered(
    conn: Connection, query: Select[Any], filters: Filters, priority: Any, now: float
) -> Select[Any]:
    if filters.trusts:
        pks = [get_trust(conn, code).pk for code in filters.trusts]
        query = query.where(studies.c.trust_pk.in_(pks))
    if filters.site:
        query = query.where(func.upper(orders.c.site_code) == filters.site.strip().upper())
    if filters.modality:
        modality = filters.modality.strip().upper()
        query = query.where(
            or_(orders.c.modality == modality, _series_where(series.c.modality == modality))
        )
    if filters.body_part:
        part = filters.body_part.strip().upper()
        query = query.where(
            or_(
                func.upper(orders.c.body_part) == part,
                _series_where(func.upper(series.c.body_part) == part),
            )
        )
    if filters.priority:
        query = query.where(priority == filters.priority.strip().lower())
    if filters.subspecialty:
        wanted = filters.subspecialty.strip().lower()
        query = query.where(func.lower(orders.c.subspecialty) == wanted)
    if filters.min_age_hours is not None:
        query = query.where(studies.c.created_at <= now - filters.min_age_hours * 3600)
    if filters.max_age_hours is not None:
        query = query.where(studies.c.created_at >= now - filters.max_age_hours * 3600)
    return query


def _status(row: Any) -> Status:
    if row.rank == 3 or row.elsewhere:
        return Status.FINAL
    if row.rank == 2:
        return Status.PRELIMINARY
    return Status.CLAIMED if row.claimed_by is not None else Status.UNREPORTED


def _item(row: Any, now: float) -> Item:
    modalities = [m for m in row.modalities.split("\\") if m]
    return Item(
        study_uid=row.study_uid,
        trust=row.trust,
        site=row.site_code or "",
        patient_name=row.patient_name,
        patient=f"{row.issuer}/{row.patient_id}",
        nhs_number=row.nhs_number,
        description=row.study_description,
        accession=row.accession_number,
        modalities=modalities,
        body_part=row.body_part or "",
        priority=Priority(row.priority) if row.priority in set(Priority) else Priority.OUTPATIENT,
        subspecialty=row.subspecialty or "",
        status=_status(row),
        arrived_at=float(row.created_at),
        due_at=float(row.due_at),
        claimed_by=row.claimed_by or "",
        claim_expires_at=row.claim_expires_at,
        order_pk=row.order_pk,
        now=now,
    )


def worklist(archive: Archive, principal: Principal, filters: Filters) -> list[Item]:
    """The studies ``principal`` may report that match ``filters``, most urgent first;
    one audited query."""
    access.require_reporter(principal)
    now = time.time()
    with archive.engine.connect() as conn:
        query = _worklist_query(conn, archive.settings, principal, filters, now)
        found = [_item(row, now) for row in conn.execute(query)]
    keys = {
        k: v
        for k, v in (
            ("trusts", list(filters.trusts)),
            ("site", filters.site),
            ("modality", filters.modality),
            ("body_part", filters.body_part),
            ("priority", filters.priority),
            ("subspecialty", filters.subspecialty),
            ("statuses", [s.value for s in filters.statuses]),
        )
        if v
    }
    access.record(
        archive.writer.post,
        principal,
        audit.Kind.QUERY,
        audit.Outcome.SUCCESS,
        None,
        {"worklist": keys, "matches": len(found)},
    )
    return found


def item_of(archive: Archive, principal: Principal, study_uid: str) -> Item | None:
    """One study as the worklist shows it, whatever its status (the report editor's
    header); None when it is not on ``principal``'s worklist. The caller audits."""
    access.require_reporter(principal)
    now = time.time()
    filters = Filters(statuses=tuple(Status), limit=1)
    with archive.engine.connect() as conn:
        query = _worklist_query(conn, archive.settings, principal, filters, now)
        row = conn.execute(query.where(studies.c.study_uid == study_uid)).first()
    return None if row is None else _item(row, now)


# --- claims ---


def touched(conn: Connection, study_uid: str) -> access.Touched:
    """Who a study is about, for the audit trail (404 when there is no such study)."""
    patient = queries.patient_of_study(conn, study_uid, scope=None)
    if patient is None:
        raise NotFound("no such study")
    return access.Touched(study_uid=study_uid, patient=patient.ref, nhs_number=patient.nhs_number)


def reportable(archive: Archive, conn: Connection, principal: Principal, study_uid: str) -> None:
    """``access.require_reportable``, with a refusal audited like any refused read."""
    try:
        access.require_reportable(conn, principal, study_uid)
    except AccessDenied:
        access.record(
            archive.writer.post,
            principal,
            audit.Kind.RETRIEVE,
            audit.Outcome.REFUSED,
            touched(conn, study_uid),
            {"report": "not on the worklist of the user's trust"},
        )
        raise


def _holder(conn: Connection, study_uid: str, now: float) -> Claim | None:
    row = conn.execute(
        select(report_claims, users.c.username)
        .join(users, users.c.id == report_claims.c.user_pk)
        .where(report_claims.c.study_uid == study_uid, report_claims.c.expires_at > now)
    ).first()
    if row is None:
        return None
    return Claim(
        study_uid=study_uid,
        username=row.username,
        claimed_at=row.claimed_at,
        expires_at=row.expires_at,
    )


def _held_by_other(claim: Claim) -> Conflict:
    until = time.strftime("%H:%M", time.localtime(claim.expires_at))
    return Conflict(f"this study is being reported by {claim.username} (claimed until {until})")


def hold(conn: Connection, principal: Principal, study_uid: str) -> Claim:
    """Claim the study for ``principal``, or renew their claim, in the caller's write
    transaction; ``Conflict`` naming the holder when another radiologist has it."""
    assert principal.user_pk is not None
    now = time.time()
    expires = now + CLAIM_SECONDS
    renewed = conn.execute(
        update(report_claims)
        .where(
            report_claims.c.study_uid == study_uid,
            report_claims.c.user_pk == principal.user_pk,
            report_claims.c.expires_at > now,
        )
        .values(expires_at=expires)
    )
    if renewed.rowcount:
        return Claim(
            study_uid=study_uid, username=principal.name, claimed_at=now, expires_at=expires
        )
    conn.execute(
        delete(report_claims).where(
            report_claims.c.study_uid == study_uid, report_claims.c.expires_at <= now
        )
    )
    try:
        with conn.begin_nested():  # the primary key lets one claimant in; the other lands here
            conn.execute(
                insert(report_claims).values(
                    study_uid=study_uid,
                    user_pk=principal.user_pk,
                    claimed_at=now,
                    expires_at=expires,
                )
            )
    except IntegrityError:
        holder = _holder(conn, study_uid, now)
        raise (
            _held_by_other(holder)
            if holder is not None
            else Conflict("the study was claimed at this very moment; try again")
        ) from None
    return Claim(study_uid=study_uid, username=principal.name, claimed_at=now, expires_at=expires)


def claim(archive: Archive, principal: Principal, study_uid: str) -> Claim:
    """Take a study off the shared worklist to report it (or renew one's own claim)."""
    access.require_reporter(principal)
    with begin_write(archive.engine) as conn:
        reportable(archive, conn, principal, study_uid)
        who = touched(conn, study_uid)
        held = hold(conn, principal, study_uid)
        detail = {"action": "report claim", "expires_at": round(held.expires_at)}
        access.record_in(conn, principal, audit.Kind.ADMIN, audit.Outcome.SUCCESS, who, detail)
    return held


def release(archive: Archive, principal: Principal, study_uid: str) -> bool:
    """Give a claimed study back to the worklist; False when ``principal`` held none.
    Another radiologist's claim is theirs to release (or to lapse)."""
    access.require_reporter(principal)
    with begin_write(archive.engine) as conn:
        who = touched(conn, study_uid)
        if not release_in(conn, principal, study_uid):
            holder = claim_of(conn, study_uid)
            if holder is not None:
                raise _held_by_other(holder)
            return False
        detail = {"action": "report release"}
        access.record_in(conn, principal, audit.Kind.ADMIN, audit.Outcome.SUCCESS, who, detail)
    return True


def release_in(conn: Connection, principal: Principal, study_uid: str) -> bool:
    """Delete ``principal``'s claim on the study in the caller's transaction."""
    gone = conn.execute(
        delete(report_claims).where(
            report_claims.c.study_uid == study_uid,
            report_claims.c.user_pk == principal.user_pk,
        )
    )
    return bool(gone.rowcount)


def claim_of(conn: Connection, study_uid: str) -> Claim | None:
    """The claim on a study, when one is in force."""
    return _holder(conn, study_uid, time.time())


def holds(conn: Connection, principal: Principal, study_uid: str) -> bool:
    claim_now = claim_of(conn, study_uid)
    return claim_now is not None and claim_now.username == principal.name


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
