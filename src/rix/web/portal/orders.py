"""The orders page (``/orders``): the trust's imaging orders, with ``/api/orders``'s filters
(status, modality, scheduled from and until, patient), each linking to its study once
one is matched to it.

A front end of ``rix.workflow.orders.read``: who may list whose orders is
``access.radiology``'s decision (a trust's clinical staff and administrators, their own
trust's), and the listing is audited there, as the API's is.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from rix.access import Principal
from rix.errors import Conflict
from rix.web.context import archive_of
from rix.web.portal import pages
from rix.workflow import orders
from rix.workflow.orders import OrderStatus

router = APIRouter(include_in_schema=False)
User = Annotated[Principal, Depends(pages.user)]
Short = Annotated[str, Query(max_length=130)]
DAY = 86400.0


def _day(value: str, *, end: bool) -> float | None:
    """A form's date (YYYY-MM-DD) as the start, or the end, of that local day."""
    if not value:
        return None
    try:
        start = time.mktime(time.strptime(value, "%Y-%m-%d"))
    except ValueError:
        raise Conflict("dates are YYYY-MM-DD") from None
    return start + DAY - 1 if end else start


@router.get("/orders", response_class=HTMLResponse)
def orders_page(
    request: Request,
    me: User,
    status: Short = "",
    modality: Short = "",
    since: Short = "",
    until: Short = "",
    patient: Short = "",
) -> Response:
    if status and status not in set(OrderStatus):
        raise Conflict(f"status is one of {', '.join(OrderStatus)}")
    chosen = {
        "status": status,
        "modality": modality.strip().upper(),
        "since": since,
        "until": until,
        "patient": patient.strip(),
    }
    found = orders.read(
        archive_of(request),
        me,
        status=status,
        modality=chosen["modality"],
        since=_day(since, end=False),
        until=_day(until, end=True),
        patient=chosen["patient"],
    )
    context = {"orders": found, "chosen": chosen, "statuses": list(OrderStatus)}
    return pages.render(request, "orders.html", context)
