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
from rix.workflow import turnaround_dashboard

router = APIRouter(prefix="/api", tags=["workflow"])
Filter = Annotated[str, Query(max_length=16, pattern="^[A-Za-z0-9_-]*$")]


@router.get(
    "/turnaround",
    summary="Report turnaround: backlog by age band, breaches, oldest, daily trend",
    response_model=None,
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
