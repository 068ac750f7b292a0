"""Turnaround: how long studies wait for their report, against a target per priority.

A backlog nobody can see is how a regional service once left thousands of studies
unreported for over ten days (issue 7). This module says which studies are on the clock,
when it started and stopped and what their target is (``cases``); the dashboard counts
them (``rix.workflow.turnaround_dashboard``) and the alerts tell of a study past its
target or a trust's backlog past ``turnaround_backlog``
(``rix.workflow.turnaround_alerts``), so both read the same cases.

**Which studies.** The ones the reporting worklist holds (``rix.workflow.awaiting_report``):
a study with images (not SR, PR, KO or DOC alone) and no report document stored from
elsewhere; its priority is its order's (``orders.study_order_pk``, the worklist's rule
too), or outpatient when it has none. One meaning of "awaiting a report" for the
worklist, the dashboard and the alerts.

**The clock** runs from the study's arrival (``studies.created_at``, its first instance)
to the first report signed as preliminary or final (``reports.signed_at``; an addendum
or correction follows a final, so counts too). Not from the order: an outpatient order
may wait weeks for its scan, and that wait is the booking list's, not the reporters'. A
study that arrives before its order (an emergency scanned first, ordered after) is timed
from its arrival all the same: the patient was waiting.

**Days** are UTC days, so every node and both databases agree on where one ends.

**Who sees what** (``access.radiology.require_turnaround``): staff of a trust count the
studies they may see, with their UIDs; region administrators and auditors count every trust's,
without naming a study.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, case, exists, func, not_, or_, select

from rix.access.radiology import TurnaroundView
from rix.config import Priority
from rix.index.schema import series, studies, trusts
from rix.index.workflow_tables import orders, reports
from rix.workflow.awaiting_report import holds_images, image_modalities, reported_elsewhere
from rix.workflow.orders import study_order_pk
from rix.workflow.report_versions import SIGNED

if TYPE_CHECKING:
    from rix.config import Settings

PRIORITIES = tuple(p.value for p in Priority)  # most urgent first
DAY = 86400.0
HOUR = 3600.0


# --- targets ---------------------------------------------------------------------------------


def target_seconds(settings: Settings, priority: str) -> float:
    """The target for an order's priority; one not configured (or unknown) takes the
    longest configured, so no study is ever without a target."""
    targets = settings.turnaround_targets  # parsed and checked by config at start
    return targets.get(priority.strip().lower(), max(targets.values()))


# --- the studies timed -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """One ordered study on the clock."""

    study_uid: str
    accession_number: str
    trust: str
    modality: str
    priority: str
    arrived: float
    reported: float | None
    target: float

    @property
    def deadline(self) -> float:
        return self.arrived + self.target

    def late_by(self, now: float) -> float:
        """Seconds past the deadline: at the report, or now while unreported."""
        return (now if self.reported is None else self.reported) - self.deadline


def _cases_query(view: TurnaroundView, trust: str, modality: str) -> tuple[Any, Any]:
    """Studies awaiting (or given) a report, with their priority rank, order modality and
    first signed report: correlated look-ups through ``ix_orders_study_uid`` and
    ``ix_reports_study_uid``, so the cost follows the studies read, not the tables."""
    known = {p: n for n, p in enumerate(PRIORITIES)}
    order_rank = case(
        (orders.c.id.is_(None), None), else_=case(known, value=orders.c.priority, else_=9)
    )
    order_modality = orders.c.modality
    reported = (
        select(func.min(reports.c.signed_at))
        .where(
            reports.c.study_uid == studies.c.study_uid,
            reports.c.status.in_(SIGNED),
            reports.c.signed_at.is_not(None),
        )
        .scalar_subquery()
    )
    query = (
        select(
            studies.c.study_uid,
            studies.c.accession_number,
            studies.c.modalities,
            studies.c.created_at,
            trusts.c.code,
            order_rank.label("rank"),
            order_modality.label("modality"),
            reported.label("reported"),
        )
        .join(trusts, trusts.c.id == studies.c.trust_pk)
        .outerjoin(orders, orders.c.id == study_order_pk(studies.c.study_uid))
        .where(
            holds_images(),
            or_(reported.is_not(None), not_(reported_elsewhere())),
            view.scope,
        )
    )
    if trust:
        query = query.where(trusts.c.code == trust.strip().upper())
    if modality:
        wanted = modality.strip().upper()
        query = query.where(
            or_(
                order_modality == wanted,
                and_(
                    order_modality.is_(None),
                    exists(
                        select(series.c.id).where(
                            series.c.study_pk == studies.c.id, series.c.modality == wanted
                        )
                    ),
                ),
            )
        )
    return query, reported


def _first_image_modality(modalities: str) -> str:
    found = image_modalities(modalities)
    return found[0] if found else ""


def _case(row: Any, settings: Settings) -> Case:
    rank = len(PRIORITIES) - 1 if row.rank is None else row.rank  # no order: outpatient
    priority = PRIORITIES[rank] if rank < len(PRIORITIES) else ""
    modality = row.modality or _first_image_modality(row.modalities)
    return Case(
        study_uid=row.study_uid,
        accession_number=row.accession_number,
        trust=row.code,
        modality=modality.upper() or "?",
        priority=priority,
        arrived=float(row.created_at),
        reported=None if row.reported is None else float(row.reported),
        target=target_seconds(settings, priority),
    )


def cases(
    conn: Connection,
    settings: Settings,
    view: TurnaroundView,
    *,
    since: float,
    trust: str = "",
    modality: str = "",
) -> list[Case]:
    """Every unreported case, and every case that arrived or was reported since ``since``
    (a report's day needs its arrival; a late report's breach day is its deadline, at most
    the longest target before the report)."""
    query, reported = _cases_query(view, trust, modality)
    longest = max(settings.turnaround_targets.values())
    query = query.where(
        or_(
            reported.is_(None),
            studies.c.created_at >= since - longest,
            reported >= since,
        )
    )
    return [_case(row, settings) for row in conn.execute(query)]


def describe(seconds: float) -> str:
    """``3d 4h``, ``2h 5m``, ``12m``: how late, as people say it."""
    seconds = max(0.0, seconds)
    d, rest = divmod(int(seconds), int(DAY))
    h, rest = divmod(rest, int(HOUR))
    m = rest // 60
    if d:
        return f"{d}d {h}h"
    return f"{h}h {m}m" if h else f"{m}m"
