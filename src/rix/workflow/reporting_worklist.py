"""The one reporting worklist across trusts: every study awaiting a final report that a
radiologist may report, most urgent first.

A study needs a report when it holds images and has no final report: none signed here
(``rix.workflow.report_versions``) and no report document stored from elsewhere
(``rix.workflow.awaiting_report``). A radiologist's worklist spans their own trust and
every trust it has a sharing agreement with (``access.radiology.reporting_scope``): a
shared reporting service shares the backlog out, and the backlog is what must never go
unseen. Listing a partner's study does not open its images; claiming it does, while the
claim lasts (``access.scope``'s reporting ground), and a report the radiologist wrote
keeps it open. A partner's patient is named before a claim unless the two trusts'
agreement says not (``access.radiology.names_shown``).

Where a study has an order (``orders.study_uid``, matched by ``rix.workflow.order_matching``) its
priority, modality, body part, site and sub-specialty come from the order; otherwise from
the study itself (its series' modalities and Body Part Examined), with priority
outpatient. Items are sorted by how close they are to their turnaround target
(``rix.workflow.turnaround``'s), overdue first, so the most urgent work is at the top
whichever filters are set.

A radiologist takes a study off the worklist by claiming it
(``rix.workflow.report_claims``); a claimed study shows as such until its claim lapses.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, case, func, not_, or_, select

from rix import audit
from rix.access import Principal, radiology, trail
from rix.archive import Archive
from rix.config import Priority, Settings
from rix.errors import Conflict
from rix.index.schema import patients, series, studies, trusts, users
from rix.index.workflow_tables import orders, report_claims, reports
from rix.region.trusts import get_trust
from rix.workflow import turnaround
from rix.workflow.awaiting_report import holds_images, reported_elsewhere, series_where
from rix.workflow.orders import study_order_pk
from rix.workflow.report_versions import FINALS, Version

LIMIT = 200


class WorklistStatus(StrEnum):
    """Where a study stands on the worklist."""

    UNREPORTED = "unreported"
    CLAIMED = "claimed"  # a radiologist holds it (and may have a draft)
    PRELIMINARY = "preliminary"
    FINAL = "final"  # final here, or a report document stored from elsewhere


AWAITING_FINAL = (WorklistStatus.UNREPORTED, WorklistStatus.CLAIMED, WorklistStatus.PRELIMINARY)


@dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    """The worklist's filters; empty means any. Codes and values compare case-blind."""

    trusts: tuple[str, ...] = ()
    site: str = ""
    modality: str = ""
    body_part: str = ""
    priority: str = ""
    subspecialty: str = ""
    statuses: tuple[WorklistStatus, ...] = AWAITING_FINAL
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
        chosen: tuple[WorklistStatus, ...] = AWAITING_FINAL
        if "all" in names:
            chosen = tuple(WorklistStatus)
        elif names:
            try:
                chosen = tuple(WorklistStatus(n) for n in names)
            except ValueError:
                raise Conflict(f"status is one of {', '.join(WorklistStatus)} or all") from None
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
    accession_number: str
    modalities: list[str]
    body_part: str
    priority: Priority
    subspecialty: str
    status: WorklistStatus
    arrived_at: float
    due_at: float
    claimed_by: str = ""
    claim_expires_at: float | None = None
    order_pk: int | None = None
    names_hidden: bool = False  # a partner's patient, unnamed until claimed
    now: float = field(default_factory=time.time)

    @property
    def age_seconds(self) -> float:
        return max(0.0, self.now - self.arrived_at)

    @property
    def overdue(self) -> bool:
        return self.status is not WorklistStatus.FINAL and self.now > self.due_at

    def as_dict(self) -> dict[str, Any]:
        return {
            "study_uid": self.study_uid,
            "trust": self.trust,
            "site": self.site,
            "patient_name": self.patient_name,
            "patient": self.patient,
            "nhs_number": self.nhs_number,
            "description": self.description,
            "accession_number": self.accession_number,
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
            "names_hidden": self.names_hidden,
        }


# --- turnaround targets ---


def _due(settings: Settings, arrived: Any, priority: Any) -> Any:
    """SQL: when an item falls due, its arrival plus its priority's target (the same
    clock as the turnaround dashboard's, ``rix.workflow.turnaround``)."""
    targets = {p.value: turnaround.target_seconds(settings, p.value) for p in Priority}
    return arrived + case(targets, value=priority, else_=targets[Priority.OUTPATIENT])


# --- the worklist ---


def _rank() -> Any:
    """SQL: 3 final (or later), 2 preliminary, 1 a draft, None nothing written here."""
    rank = case(
        (reports.c.status.in_(FINALS), 3),
        (reports.c.status == Version.PRELIMINARY, 2),
        else_=1,
    )
    return select(func.max(rank)).where(reports.c.study_uid == studies.c.study_uid)


def _status_condition(
    statuses: Sequence[WorklistStatus], rank: Any, claimed: Any, elsewhere: Any
) -> ColumnElement[bool]:
    final = or_(rank == 3, elsewhere)
    not_signed = and_(func.coalesce(rank, 0) < 2, not_(elsewhere))
    each = {
        WorklistStatus.FINAL: final,
        WorklistStatus.PRELIMINARY: and_(rank == 2, not_(elsewhere)),
        WorklistStatus.CLAIMED: and_(not_signed, claimed.is_not(None)),
        WorklistStatus.UNREPORTED: and_(not_signed, claimed.is_(None)),
    }
    return or_(*(each[s] for s in dict.fromkeys(statuses)))


def _worklist_query(
    conn: Connection, settings: Settings, principal: Principal, filters: Filters, now: float
) -> Select[Any]:
    rank = _rank().scalar_subquery()
    # the claim shown, aliased: ``names_shown`` probes report_claims for the caller's own
    held = report_claims.alias("held")
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
            held.c.expires_at.label("claim_expires_at"),
            radiology.names_shown(principal).label("names_shown"),
        )
        .select_from(studies)
        .join(patients, patients.c.id == studies.c.patient_pk)
        .join(trusts, trusts.c.id == studies.c.trust_pk)
        .outerjoin(orders, orders.c.id == study_order_pk(studies.c.study_uid))
        .outerjoin(
            held,
            and_(
                held.c.study_uid == studies.c.study_uid,
                held.c.expires_at > now,
            ),
        )
        .outerjoin(users, users.c.id == held.c.user_pk)
        .where(
            radiology.reporting_scope(principal),
            holds_images(),
            _status_condition(filters.statuses, rank, held.c.study_uid, elsewhere),
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
            or_(orders.c.modality == modality, series_where(series.c.modality == modality))
        )
    if filters.body_part:
        part = filters.body_part.strip().upper()
        query = query.where(
            or_(
                func.upper(orders.c.body_part) == part,
                series_where(func.upper(series.c.body_part) == part),
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


def _status(row: Any) -> WorklistStatus:
    if row.rank == 3 or row.elsewhere:
        return WorklistStatus.FINAL
    if row.rank == 2:
        return WorklistStatus.PRELIMINARY
    return WorklistStatus.CLAIMED if row.claimed_by is not None else WorklistStatus.UNREPORTED


def _item(row: Any, now: float) -> Item:
    modalities = [m for m in row.modalities.split("\\") if m]
    shown = bool(row.names_shown)  # access.radiology.names_shown
    return Item(
        study_uid=row.study_uid,
        trust=row.trust,
        site=row.site_code or "",
        patient_name=row.patient_name if shown else "",
        patient=f"{row.issuer}/{row.patient_id}" if shown else "",
        nhs_number=row.nhs_number if shown else "",
        description=row.study_description,
        accession_number=row.accession_number,
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
        names_hidden=not shown,
        now=now,
    )


def worklist(archive: Archive, principal: Principal, filters: Filters) -> list[Item]:
    """The studies ``principal`` may report that match ``filters``, most urgent first;
    one audited query."""
    radiology.require_reporter(principal)
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
    trail.record(
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
    radiology.require_reporter(principal)
    now = time.time()
    filters = Filters(statuses=tuple(WorklistStatus), limit=1)
    with archive.engine.connect() as conn:
        query = _worklist_query(conn, archive.settings, principal, filters, now)
        row = conn.execute(query.where(studies.c.study_uid == study_uid)).first()
    return None if row is None else _item(row, now)
