"""The turnaround dashboard: what waits for a report by trust, modality and age, what
is past its target, and the trend of the last days, for the portal page, the API and its
CSV export.

The figures are read from the cases ``rix.workflow.turnaround`` times (which studies,
which clock, which target); this module only counts them, so the page, the export and
the alerts (``rix.workflow.turnaround_alerts``) never disagree on what a breach is.
Staff of a trust see their studies' UIDs for the oldest waiting; region administrators
and auditors see counts only (``access.radiology.require_turnaround``).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from rix import audit
from rix.access import Principal, trail
from rix.access.radiology import TurnaroundView, require_turnaround
from rix.errors import Conflict
from rix.workflow.turnaround import DAY, HOUR, Case, cases

if TYPE_CHECKING:
    from rix.archive import Archive
    from rix.config import Settings


@dataclass(frozen=True, slots=True, kw_only=True)
class Band:
    label: str
    start: float  # age in seconds, inclusive
    end: float  # exclusive


BANDS = (
    Band(label="<1h", start=0.0, end=HOUR),
    Band(label="1-4h", start=HOUR, end=4 * HOUR),
    Band(label="4-24h", start=4 * HOUR, end=DAY),
    Band(label="1-7d", start=DAY, end=7 * DAY),
    Band(label=">7d", start=7 * DAY, end=float("inf")),
)

# --- the dashboard's numbers -----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Oldest:
    age: float
    priority: str
    overdue: float  # seconds past its target; negative while within it
    study_uid: str = ""  # only for who may name studies
    accession_number: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Group:
    """One trust and modality (or ``*`` for all of them)."""

    trust: str
    modality: str
    bands: tuple[int, ...]  # unreported, by BANDS
    breached: int  # unreported and past target now
    reported: int  # first reported within the period
    reported_late: int  # of those, past their target
    median_turnaround: float | None  # of those, seconds
    oldest: Oldest | None

    @property
    def unreported(self) -> int:
        return sum(self.bands)


@dataclass(frozen=True, slots=True, kw_only=True)
class Day:
    date: str  # YYYY-MM-DD, UTC
    arrivals: int  # ordered studies that arrived that day
    reported: int  # first reports signed that day
    median_turnaround: float | None
    breaches: int  # deadlines that passed that day without a report


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    now: float
    since: float
    days: int
    targets: dict[str, float]
    identifiers: bool
    total: Group
    groups: list[Group]
    trend: list[Day]
    trusts: list[str] = field(default_factory=list)
    modalities: list[str] = field(default_factory=list)


def period_start(now: float, days: int) -> float:
    """Midnight (UTC) that opens the first of the last ``days`` days, today included."""
    return (now // DAY) * DAY - (max(days, 1) - 1) * DAY


def band_of(age: float) -> int:
    return next(n for n, b in enumerate(BANDS) if age < b.end)


def summarise(
    conn: Connection,
    settings: Settings,
    view: TurnaroundView,
    *,
    trust: str = "",
    modality: str = "",
    days: int = 7,
    now: float | None = None,
) -> Summary:
    """The dashboard: backlog by age band, breaches and the oldest per trust and modality,
    and the trend of the last ``days`` days."""
    now = time.time() if now is None else now
    since = period_start(now, days)
    found = cases(conn, settings, view, since=since, trust=trust, modality=modality)
    keys = sorted({(c.trust, c.modality) for c in found})
    groups = [
        _group(t, m, [c for c in found if (c.trust, c.modality) == (t, m)], now, since, view)
        for t, m in keys
    ]
    return Summary(
        now=now,
        since=since,
        days=days,
        targets=dict(settings.turnaround_targets),
        identifiers=view.identifiers,
        total=_group("*", "*", found, now, since, view),
        groups=groups,
        trend=_trend(found, now, since, days),
        trusts=sorted({t for t, _ in keys}),
        modalities=sorted({m for _, m in keys}),
    )


def _group(
    trust: str,
    modality: str,
    found: Sequence[Case],
    now: float,
    since: float,
    view: TurnaroundView,
) -> Group:
    waiting = [c for c in found if c.reported is None and c.arrived <= now]
    bands = [0] * len(BANDS)
    for c in waiting:
        bands[band_of(now - c.arrived)] += 1
    done = [c for c in found if c.reported is not None and since <= c.reported <= now]
    times = [c.reported - c.arrived for c in done if c.reported is not None]
    oldest = min(waiting, key=lambda c: c.arrived, default=None)
    return Group(
        trust=trust,
        modality=modality,
        bands=tuple(bands),
        breached=sum(1 for c in waiting if c.late_by(now) > 0),
        reported=len(done),
        reported_late=sum(1 for c in done if c.late_by(now) > 0),
        median_turnaround=statistics.median(times) if times else None,
        oldest=None if oldest is None else _oldest(oldest, now, view.identifiers),
    )


def _oldest(c: Case, now: float, identifiers: bool) -> Oldest:
    return Oldest(
        age=now - c.arrived,
        priority=c.priority,
        overdue=c.late_by(now),
        study_uid=c.study_uid if identifiers else "",
        accession_number=c.accession_number if identifiers else "",
    )


def _trend(found: Sequence[Case], now: float, since: float, days: int) -> list[Day]:
    def day(t: float) -> int:
        return int((t - since) // DAY)

    arrivals = [0] * days
    reported: list[list[float]] = [[] for _ in range(days)]
    breaches = [0] * days
    for c in found:
        if since <= c.arrived <= now:
            arrivals[day(c.arrived)] += 1
        if c.reported is not None and since <= c.reported <= now:
            reported[day(c.reported)].append(c.reported - c.arrived)
        if since <= c.deadline <= now and c.late_by(now) > 0:
            breaches[day(c.deadline)] += 1
    return [
        Day(
            date=datetime.fromtimestamp(since + n * DAY, UTC).strftime("%Y-%m-%d"),
            arrivals=arrivals[n],
            reported=len(reported[n]),
            median_turnaround=statistics.median(reported[n]) if reported[n] else None,
            breaches=breaches[n],
        )
        for n in range(days)
    ]


# --- the dashboard, as the portal and the API ask for it --------------------------------------

MAX_DAYS = 90


def dashboard(
    archive: Archive,
    principal: Principal,
    *,
    trust: str = "",
    modality: str = "",
    days: int = 7,
) -> Summary:
    """``summarise`` for ``principal``, with its access rule applied, and one audited query
    (what was asked, and how many studies were counted)."""
    view = require_turnaround(principal)
    if not 1 <= days <= MAX_DAYS:
        raise Conflict(f"days is 1 to {MAX_DAYS}")
    with archive.engine.connect() as conn:
        found = summarise(conn, archive.settings, view, trust=trust, modality=modality, days=days)
    trail.record(
        archive.writer.post,
        principal,
        audit.Kind.QUERY,
        audit.Outcome.SUCCESS,
        None,
        {
            "turnaround": {"trust": trust, "modality": modality, "days": days},
            "unreported": found.total.unreported,
        },
    )
    return found


def as_dict(found: Summary) -> dict[str, Any]:
    """The JSON export: seconds for durations, UTC dates for days."""
    return {
        "now": found.now,
        "since": found.since,
        "days": found.days,
        "targets": found.targets,
        "bands": [b.label for b in BANDS],
        "total": _group_dict(found.total),
        "groups": [_group_dict(g) for g in found.groups],
        "trend": [dataclasses.asdict(d) for d in found.trend],
    }


def _group_dict(g: Group) -> dict[str, Any]:
    found = dataclasses.asdict(g)
    found["bands"] = dict(zip((b.label for b in BANDS), g.bands, strict=True))
    found["unreported"] = g.unreported
    return found


CSV_COLUMNS = (
    "trust",
    "modality",
    *(f"unreported {b.label}" for b in BANDS),
    "unreported",
    "breached",
    "reported",
    "reported late",
    "median turnaround hours",
    "oldest unreported hours",
    "oldest priority",
    "oldest accession",
)


def csv_rows(found: Summary) -> list[list[str]]:
    """One row per trust and modality, then the total (``*``), for a spreadsheet."""
    return [_csv_row(g) for g in [*found.groups, found.total]]


def _csv_row(g: Group) -> list[str]:
    def hours(seconds: float | None) -> str:
        return "" if seconds is None else f"{seconds / HOUR:.2f}"

    oldest = g.oldest
    return [
        g.trust,
        g.modality,
        *(str(n) for n in g.bands),
        str(g.unreported),
        str(g.breached),
        str(g.reported),
        str(g.reported_late),
        hours(g.median_turnaround),
        hours(None if oldest is None else oldest.age),
        "" if oldest is None else oldest.priority,
        "" if oldest is None else oldest.accession_number,
    ]
