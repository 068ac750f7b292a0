"""The status page: what the archive holds, how fast it is receiving, the job queue, and
what went wrong lately, for administrators (region-wide for a region administrator, their
own trust's for a trust administrator).

The ingest rate is drawn as an SVG bar chart computed here and written by the template:
no script, and no ``style`` attribute (the pages' ``style-src 'self'`` forbids them);
bars are coloured by SVG presentation attributes and the portal's stylesheet. The recent
refused and failed audit events may name patients as the audit trail holds them, so
reading them is itself an audited query.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from rix import audit
from rix.access import ADMIN_ROLES, Principal, checks, trail
from rix.index import statistics
from rix.jobs import queue
from rix.jobs.queue import State
from rix.web.context import archive_of
from rix.web.portal import charts, pages

router = APIRouter(include_in_schema=False)
User = Annotated[Principal, Depends(pages.user)]
PROBLEM_DAYS = 7  # how far back the page looks for refused and failed events
BAR_WIDTH, BAR_HEIGHT, LABEL_ROOM = charts.BAR_WIDTH, charts.BAR_HEIGHT, charts.LABEL_ROOM


def size_text(count: int) -> str:
    """Bytes in decimal units, as disks are sold: 1.5 GB."""
    if count < 1000:
        return f"{count} bytes"
    units = ("kB", "MB", "GB", "TB")
    value, step = count / 1000, 0
    while value >= 1000 and step < len(units) - 1:
        value, step = value / 1000, step + 1
    return f"{value:.1f} {units[step]}"


def gist(detail: dict[str, Any]) -> str:
    """One line of an audit event's detail: its reason when it has one."""
    if isinstance(detail.get("reason"), str):
        return str(detail["reason"])[:300]
    text = "; ".join(f"{k}: {v}" for k, v in sorted(detail.items()))
    return text if len(text) <= 300 else text[:299] + "…"


def bars(hours: list[statistics.HourCount]) -> list[charts.Bar]:
    """The ingest chart's bars, one per hour; every sixth hour and the last labelled."""
    return charts.columns(
        [h.instances for h in hours],
        [time.strftime("%H:00", time.localtime(h.start)) for h in hours],
        tick=lambda i: i % 6 == 0 or i == len(hours) - 1,
    )


# what an administrator follows up (rix.audit.Outcome)
PROBLEM_OUTCOMES = (audit.Outcome.REFUSED.value, audit.Outcome.FAILURE.value)


@router.get("/status", response_class=HTMLResponse)
def status_page(request: Request, me: User) -> Response:
    checks.require_role(me, *ADMIN_ROLES)
    archive = archive_of(request)
    trust_pk = checks.administered_trust(me)
    archive.writer.flush()  # audit events of reads are queued: show the latest refusals
    since = time.time() - PROBLEM_DAYS * 86400
    with archive.engine.connect() as conn:
        held = statistics.holdings(conn, trust_pk=trust_pk)
        hours = statistics.hourly_arrivals(conn, trust_pk=trust_pk)
        counts = queue.counts(conn, trust_pk=trust_pk)
        failing = statistics.failing_jobs(conn, trust_pk=trust_pk)
    problems = audit.search(
        archive.engine,
        outcomes=PROBLEM_OUTCOMES,
        trust="" if trust_pk is None else me.trust_code,
        since=since,
        limit=50,
    )
    trail.record(
        archive.writer.post,
        me,
        audit.Kind.QUERY,
        audit.Outcome.SUCCESS,
        None,
        {"status_page": {"problem_events": [p.id for p in problems]}},
    )
    return pages.render(
        request,
        "status.html",
        {
            "held": held,
            "free": archive.store.free_bytes(),
            "bars": bars(hours),
            "arrivals": sum(h.instances for h in hours),
            "chart_width": len(hours) * BAR_WIDTH,
            "chart_height": BAR_HEIGHT + LABEL_ROOM,
            "baseline": BAR_HEIGHT,
            "counts": [(s.value, counts.get(s.value, 0)) for s in State],
            "failing": failing,
            "problems": problems,
            "problem_days": PROBLEM_DAYS,
            "region": trust_pk is None,
            "size": size_text,
            "gist": gist,
        },
    )
