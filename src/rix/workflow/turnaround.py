"""Turnaround: how long studies wait for their report, against a target per priority.

A backlog nobody can see is how a regional service once left thousands of studies
unreported for over ten days (issue 7): this module counts what waits, by trust,
modality and age, and raises an alert when a study passes its target or a trust's
backlog grows past ``turnaround_backlog``.

**Which studies.** The ones the reporting worklist holds (``rix.workflow.reporting``): a
study with images (not SR, PR, KO or DOC alone) and no report document stored from
elsewhere; its priority is its most urgent order's, or outpatient when it has none. One
meaning of "awaiting a report" for the worklist, the dashboard and the alerts.

**The clock** runs from the study's arrival (``studies.created_at``, its first instance)
to the first report signed as preliminary or final (``reports.signed_at``; an addendum
or correction follows a final, so counts too). Not from the order: an outpatient order
may wait weeks for its scan, and that wait is the booking list's, not the reporters'. A
study that arrives before its order (an emergency scanned first, ordered after) is timed
from its arrival all the same: the patient was waiting.

**Days** are UTC days, so every node and both databases agree on where one ends.

**Who sees what** (``access.require_turnaround``): staff of a trust count the studies
they may see, with their UIDs; region administrators and auditors count every trust's,
without naming a study.
"""

from __future__ import annotations

import dataclasses
import json
import re
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Connection, and_, case, exists, func, not_, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from rix import access, audit
from rix.access import SYSTEM, Principal, TurnaroundView, require_turnaround
from rix.config import SettingsError
from rix.errors import Conflict
from rix.index.database import begin_write
from rix.index.schema import orders, reports, series, studies, trusts, turnaround_alerts
from rix.jobs import mail, queue
from rix.jobs import webhook as notify
from rix.workflow.orders import Priority

if TYPE_CHECKING:
    from rix.archive import Archive
    from rix.config import Settings
    from rix.jobs.worker import Context

log = structlog.get_logger(__name__)

PRIORITIES = tuple(p.value for p in Priority)  # most urgent first
REPORTED = ("preliminary", "final", "addendum", "corrected")
NOT_ORDERED = ("cancelled", "discontinued")
DAY = 86400.0
HOUR = 3600.0


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

# --- targets ---------------------------------------------------------------------------------

_UNITS = {"s": 1.0, "m": 60.0, "h": HOUR, "d": DAY}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(text: str) -> float:
    """``90m``, ``24h``, ``7d``, or plain seconds."""
    found = _DURATION.match(text.lower())
    if found is None:
        raise SettingsError(f"turnaround_targets: {text!r} is not a duration such as 24h")
    return float(found[1]) * _UNITS[found[2] or "s"]


@lru_cache(maxsize=16)
def parse_targets(text: str) -> dict[str, float]:
    """``emergency=1h,inpatient=24h,outpatient=7d`` as seconds per priority."""
    found: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if not sep or name not in PRIORITIES:
            raise SettingsError(
                f"turnaround_targets: {item!r} is not priority=duration "
                f"(priorities: {', '.join(PRIORITIES)})"
            )
        found[name] = parse_duration(value)
    if not found:
        raise SettingsError("turnaround_targets names no priority")
    return found


def target_seconds(settings: Settings, priority: str) -> float:
    """The target for an order's priority; one not configured (or unknown) takes the
    longest configured, so no study is ever without a target."""
    targets = parse_targets(settings.turnaround_targets)
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
    from rix.workflow import reporting_worklist

    of_study = and_(orders.c.study_uid == studies.c.study_uid, orders.c.status.not_in(NOT_ORDERED))
    rank = case({p: n for n, p in enumerate(PRIORITIES)}, value=orders.c.priority, else_=9)
    order_rank = select(func.min(rank)).where(of_study).scalar_subquery()
    order_modality = select(func.max(orders.c.modality)).where(of_study).scalar_subquery()
    reported = (
        select(func.min(reports.c.signed_at))
        .where(
            reports.c.study_uid == studies.c.study_uid,
            reports.c.status.in_(REPORTED),
            reports.c.signed_at.is_not(None),
        )
        .scalar_subquery()
    )
    images = exists(
        select(series.c.id).where(
            series.c.study_pk == studies.c.id,
            series.c.modality.not_in(reporting_worklist.NOT_IMAGES),
        )
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
        .where(images, or_(reported.is_not(None), not_(reporting_worklist.reported_elsewhere())))
    )
    if view.scope is not None:
        query = query.where(view.scope)
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
    from rix.workflow import reporting_worklist

    found = [m for m in modalities.split("\\") if m and m not in reporting_worklist.NOT_IMAGES]
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
    longest = max(parse_targets(settings.turnaround_targets).values())
    query = query.where(
        or_(
            reported.is_(None),
            studies.c.created_at >= since - longest,
            reported >= since,
        )
    )
    return [_case(row, settings) for row in conn.execute(query)]


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
        targets=parse_targets(settings.turnaround_targets),
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


# --- alerts ----------------------------------------------------------------------------------

CHECK_KIND = "turnaround-check"
BREACH_LOOKBACK = 7 * DAY  # a rix down for days still alerts what broke meanwhile


def schedule_check(archive: Archive, *, delay: float = 0.0) -> None:
    """Queue the periodic check (one pending, whichever node starts it); ``run_check``
    queues the next one."""
    with begin_write(archive.engine) as conn:
        queue.enqueue(
            conn,
            CHECK_KIND,
            {},
            key=CHECK_KIND,
            run_at=time.time() + delay,
            label="turnaround: breaches and backlogs",
        )
    queue.wake()


def run_check(ctx: Context) -> None:
    """The periodic job: raise what is new, then come back in ``turnaround_check_minutes``."""
    settings = ctx.archive.settings
    try:
        raised = check(ctx.archive, settings)
    finally:
        schedule_check(ctx.archive, delay=settings.turnaround_check_minutes * 60)
    if raised:
        log.info("turnaround alerts raised", alerts=raised)


def check(archive: Archive, settings: Settings, *, now: float | None = None) -> int:
    """Raise an alert for each new breach and each trust's backlog past the threshold;
    returns how many were raised.

    Each alert is a row whose unique ``key`` is inserted with its webhook and email jobs
    in one transaction: a second check, on this node or another, at the same moment or
    later, inserts nothing and sends nothing.
    """
    now = time.time() if now is None else now
    view = require_turnaround(SYSTEM)
    with archive.engine.connect() as conn:
        found = cases(conn, settings, view, since=now - BREACH_LOOKBACK)
    breached = [c for c in found if _newly_breached(c, now)]
    alerts = [_breach(c, now) for c in breached]
    alerts += _backlogs(found, settings, now)
    if not alerts:
        return 0
    with begin_write(archive.engine) as conn:
        raised = [a for a in alerts if _claim(conn, a, now)]
        _deliver(conn, settings, raised)
    return len(raised)


def _newly_breached(c: Case, now: float) -> bool:
    """Its deadline passed within ``BREACH_LOOKBACK`` without a report by then. An alert
    is news: a backlog older than that (a migrated archive's first day) is on the
    dashboard and in the backlog alert, not in a flood of one message per study."""
    return now - BREACH_LOOKBACK <= c.deadline <= now and c.late_by(now) > 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    key: str
    kind: str  # breach or backlog
    trust: str
    study_uid: str | None
    detail: dict[str, Any]  # no patient identifiers: this goes to webhooks and email


def _breach(c: Case, now: float) -> Alert:
    return Alert(
        key=f"breach:{c.study_uid}",
        kind="breach",
        trust=c.trust,
        study_uid=c.study_uid,
        detail={
            "trust": c.trust,
            "modality": c.modality,
            "priority": c.priority or "unknown",
            "target_seconds": c.target,
            "late_seconds": round(c.late_by(now)),
            "reported": c.reported is not None,
            "accession_number": c.accession_number,
        },
    )


def _backlogs(found: Iterable[Case], settings: Settings, now: float) -> list[Alert]:
    if not settings.turnaround_backlog:
        return []
    waiting: dict[str, int] = {}
    for c in found:
        if c.reported is None:
            waiting[c.trust] = waiting.get(c.trust, 0) + 1
    today = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")
    return [
        Alert(
            key=f"backlog:{trust}:{today}",
            kind="backlog",
            trust=trust,
            study_uid=None,
            detail={
                "trust": trust,
                "unreported": count,
                "threshold": settings.turnaround_backlog,
            },
        )
        for trust, count in sorted(waiting.items())
        if count > settings.turnaround_backlog
    ]


def _claim(conn: Connection, alert: Alert, now: float) -> bool:
    """Insert the alert's row unless its key exists; True when this call inserted it."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    trust_pk = select(trusts.c.id).where(trusts.c.code == alert.trust).scalar_subquery()
    stmt = (
        dialect.insert(turnaround_alerts)
        .values(
            key=alert.key,
            kind=alert.kind,
            trust_pk=trust_pk,
            study_uid=alert.study_uid,
            detail=json.dumps(alert.detail, sort_keys=True),
            raised_at=now,
        )
        .on_conflict_do_nothing(index_elements=[turnaround_alerts.c.key])
        .returning(turnaround_alerts.c.id)
    )
    return conn.execute(stmt).first() is not None


def _deliver(conn: Connection, settings: Settings, raised: Sequence[Alert]) -> None:
    """One webhook POST per alert (machines take them one by one), and one email per
    recipient, trust and check (people read a list, not a flood on the first day)."""
    webhook = settings.turnaround_webhook or settings.alert_webhook
    for alert in raised:
        if webhook:
            queue.enqueue(
                conn,
                notify.KIND,
                {"url": webhook, "body": _webhook_body(alert, settings)},
                priority=queue.Priority.URGENT,
                label=f"alert: turnaround {alert.kind} at {alert.trust}",
            )
    by_trust: dict[str, list[Alert]] = {}
    for alert in raised:
        by_trust.setdefault(alert.trust, []).append(alert)
    for trust, alerts in sorted(by_trust.items()):
        for address in recipients(settings, trust):
            mail.enqueue(
                conn,
                settings,
                to=address,
                subject=_subject(trust, alerts),
                body=_email_body(trust, alerts, settings),
                key=f"turnaround-mail:{address}:{alerts[0].key}",
            )


def recipients(settings: Settings, trust: str) -> list[str]:
    """``turnaround_email``'s addresses for a trust: the unqualified ones and its own."""
    found = []
    for item in filter(None, (part.strip() for part in settings.turnaround_email.split(","))):
        code, sep, address = item.rpartition("=")
        if not sep or code.strip().upper() == trust:
            found.append(address.strip())
    return found


def dashboard_url(settings: Settings, trust: str) -> str:
    return f"{settings.public_url.rstrip('/')}/turnaround?trust={trust}"


def _webhook_body(alert: Alert, settings: Settings) -> dict[str, Any]:
    body: dict[str, Any] = {"event": f"turnaround-{alert.kind}", **alert.detail}
    if alert.study_uid:
        body["study_uid"] = alert.study_uid
    body["dashboard"] = dashboard_url(settings, alert.trust)
    return body


def _subject(trust: str, alerts: Sequence[Alert]) -> str:
    breaches = sum(1 for a in alerts if a.kind == "breach")
    parts = [f"{breaches} turnaround breach{'es' if breaches != 1 else ''}"] if breaches else []
    parts += [f"backlog of {a.detail['unreported']}" for a in alerts if a.kind == "backlog"]
    return f"rix {trust}: {', '.join(parts)}"


def describe(seconds: float) -> str:
    """``3d 4h``, ``2h 5m``, ``12m``: how late, as people say it."""
    seconds = max(0.0, seconds)
    d, rest = divmod(int(seconds), int(DAY))
    h, rest = divmod(rest, int(HOUR))
    m = rest // 60
    if d:
        return f"{d}d {h}h"
    return f"{h}h {m}m" if h else f"{m}m"


EMAIL_LINES = 20


def _email_body(trust: str, alerts: Sequence[Alert], settings: Settings) -> str:
    """Trust, modality, priority and how late; never a patient, an accession or a UID."""
    lines = [f"Turnaround alerts at {trust}:", ""]
    for a in alerts[:EMAIL_LINES]:
        d = a.detail
        if a.kind == "backlog":
            lines.append(f"- {d['unreported']} studies await a report (threshold {d['threshold']})")
            continue
        state = "reported" if d["reported"] else "still unreported"
        lines.append(
            f"- {d['priority']} {d['modality']}: {describe(d['late_seconds'])} past its "
            f"{describe(d['target_seconds'])} target, {state}"
        )
    if len(alerts) > EMAIL_LINES:
        lines.append(f"- and {len(alerts) - EMAIL_LINES} more")
    lines += ["", f"The dashboard: {dashboard_url(settings, trust)}"]
    return "\n".join(lines) + "\n"


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
    access.record(
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
