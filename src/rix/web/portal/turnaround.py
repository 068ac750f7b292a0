"""The turnaround dashboard (``/turnaround``): what waits for a report, by trust,
modality and age; what is past its target; the oldest; and the last days' trend.

The figures come from ``rix.workflow.turnaround_dashboard.dashboard`` (the access rule and the
audit record are there); this module only lays them out as server-drawn SVG charts
(``charts``), each with its figures as a table for screen readers and for copying.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from rix.access import Principal
from rix.region.trusts import all_trusts
from rix.web.context import archive_of
from rix.web.portal import charts, pages
from rix.workflow import turnaround, turnaround_dashboard
from rix.workflow.turnaround_dashboard import BANDS, Summary

router = APIRouter(include_in_schema=False)
User = Annotated[Principal, Depends(pages.user)]
Filter = Annotated[str, Query(max_length=16, pattern="^[A-Za-z0-9_-]*$")]
MODALITIES = ("CR", "CT", "DX", "MG", "MR", "NM", "PT", "RF", "US", "XA")
DAY_CHOICES = (7, 14, 30, 90)
BAND_WIDTH = 64  # SVG units per age band
DAY_WIDTH = 48  # SVG units per day of the trend: two bars of 16, a gap, room for a date


def hours(seconds: float | None) -> str:
    """A duration as the dashboard writes it: 3d 4h, 2h 5m, 12m; '' for none."""
    return "" if seconds is None else turnaround.describe(seconds)


def day_label(date: str) -> str:
    return datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=UTC).strftime("%-d %b")


def _trend_charts(found: Summary) -> dict[str, Any]:
    labels = [day_label(d.date) for d in found.trend]
    every = 1 if found.days <= 14 else 7

    def tick(i: int) -> bool:
        return (len(labels) - 1 - i) % every == 0

    arrivals = [d.arrivals for d in found.trend]
    reported = [d.reported for d in found.trend]
    top = max([*arrivals, *reported, 0])
    medians = [
        None if d.median_turnaround is None else d.median_turnaround / 3600 for d in found.trend
    ]
    median_points = charts.line(medians, labels, width=DAY_WIDTH)
    return {
        "arrival_bars": charts.columns(arrivals, labels, width=DAY_WIDTH, tick=tick, top=top),
        "reported_bars": charts.columns(reported, labels, width=DAY_WIDTH, tick=tick, top=top),
        "breach_bars": charts.columns(
            [d.breaches for d in found.trend], labels, width=DAY_WIDTH, tick=tick
        ),
        "median_points": median_points,
        "median_line": charts.polyline(median_points),
        "median_top": max((m for m in medians if m is not None), default=0.0),
        "trend_width": len(labels) * DAY_WIDTH,
    }


@router.get("/turnaround", response_class=HTMLResponse)
async def turnaround_page(
    request: Request,
    me: User,
    trust: Filter = "",
    modality: Filter = "",
    days: Annotated[int, Query(ge=1, le=turnaround_dashboard.MAX_DAYS)] = 7,
) -> Response:
    archive = archive_of(request)
    found = await run_in_threadpool(
        turnaround_dashboard.dashboard, archive, me, trust=trust, modality=modality, days=days
    )
    with archive.engine.connect() as conn:
        codes = [t.code for t in all_trusts(conn)]
    band_bars = charts.columns(list(found.total.bands), [b.label for b in BANDS], width=BAND_WIDTH)
    return pages.render(
        request,
        "turnaround.html",
        {
            "found": found,
            "trust": trust.upper(),
            "modality": modality.upper(),
            "days": days,
            "trust_choices": codes,
            "modality_choices": sorted({*MODALITIES, *found.modalities}),
            "day_choices": sorted({*DAY_CHOICES, days}),
            "bands": [b.label for b in BANDS],
            "band_bars": band_bars,
            "band_width": len(BANDS) * BAND_WIDTH,
            "height": charts.BAR_HEIGHT,
            "label_room": charts.LABEL_ROOM,
            "targets": [(p, hours(s)) for p, s in found.targets.items()],
            "hours": hours,
            "updated": pages.when(found.now, archive.settings.display_timezone),
            "query": f"trust={trust.upper()}&modality={modality.upper()}&days={days}",
            **_trend_charts(found),
        },
    )
