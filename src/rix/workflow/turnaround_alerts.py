"""Turnaround alerts: a breach or a growing backlog told to people and machines, once.

A recurring job (``CHECK_KIND``, every ``turnaround_check_minutes``, one pending
whichever node queues it) reads the cases ``rix.workflow.turnaround`` times and raises an
alert for each study newly past its target and for each trust whose backlog passed
``turnaround_backlog``: a webhook POST per alert, and one email per recipient and trust.
Alerts name trust, modality, priority and lateness, never a patient: they leave rix.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from rix.access import SYSTEM
from rix.access.radiology import require_turnaround
from rix.index.database import begin_write
from rix.index.schema import trusts
from rix.index.workflow_tables import turnaround_alerts
from rix.jobs import mail, queue
from rix.jobs import webhook as notify
from rix.workflow.turnaround import DAY, Case, cases, describe

if TYPE_CHECKING:
    from rix.archive import Archive
    from rix.config import Settings
    from rix.jobs.worker import Context

log = structlog.get_logger(__name__)

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
