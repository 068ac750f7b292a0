"""``/api/turnaround``: the turnaround dashboard's figures as JSON or CSV, for scripts and
spreadsheets. What a caller counts is decided in ``access.radiology.require_turnaround``."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from rix.web.auth import principal_of
from rix.web.context import archive_of
from rix.web.fields import Answer
from rix.workflow import turnaround_dashboard

router = APIRouter(prefix="/api", tags=["workflow"])
Filter = Annotated[str, Query(max_length=16, pattern="^[A-Za-z0-9_-]*$")]


class OldestOut(Answer):
    """The oldest unreported study of a group; the UID and accession number only for who
    may name the studies they count."""

    age: float  # seconds since it arrived
    priority: str
    overdue: float  # seconds past its target; negative while within it
    study_uid: str
    accession_number: str


class GroupOut(Answer):
    """A trust and modality (``*``: all); durations in seconds."""

    trust: str
    modality: str
    bands: dict[str, int]  # unreported studies by age band
    unreported: int
    breached: int  # unreported and past target now
    reported: int  # first reported within the period
    reported_late: int  # of those, past their target
    median_turnaround: float | None
    oldest: OldestOut | None


class DayOut(Answer):
    date: str  # YYYY-MM-DD, UTC
    arrivals: int
    reported: int
    median_turnaround: float | None
    breaches: int


class TurnaroundOut(Answer):
    """The dashboard: ``now`` and ``since`` (the period's start) are Unix seconds,
    ``targets`` seconds by priority."""

    now: float
    since: float
    days: int
    targets: dict[str, float]
    bands: list[str]
    total: GroupOut
    groups: list[GroupOut]
    trend: list[DayOut]


CSV = {
    200: {
        "content": {
            "text/csv": {
                "schema": {"type": "string"},
                "example": ",".join(turnaround_dashboard.CSV_COLUMNS) + "\r\n",
            }
        },
        "description": "JSON, or with format=csv one row per trust and modality, then * *",
    }
}


@router.get(
    "/turnaround",
    summary="Report turnaround: backlog by age band, breaches, oldest, daily trend",
    response_model=TurnaroundOut,
    responses=CSV,  # type: ignore[arg-type]
)
async def get_turnaround(
    request: Request,
    trust: Filter = "",
    modality: Filter = "",
    days: Annotated[int, Query(ge=1, le=turnaround_dashboard.MAX_DAYS)] = 7,
    format: Literal["json", "csv"] = "json",
) -> dict[str, Any] | Response:
    found = await run_in_threadpool(
        turnaround_dashboard.dashboard,
        archive_of(request),
        principal_of(request),
        trust=trust,
        modality=modality,
        days=days,
    )
    if format == "json":
        return turnaround_dashboard.as_dict(found)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(turnaround_dashboard.CSV_COLUMNS)
    writer.writerows(turnaround_dashboard.csv_rows(found))
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="turnaround.csv"'},
    )
