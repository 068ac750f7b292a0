"""Which function runs each kind of job."""

from __future__ import annotations

from rix import reconcile
from rix.jobs.worker import Handler
from rix.routing import deliver, notify, prefetch, stability, transfer

HANDLERS: dict[str, Handler] = {
    stability.KIND: stability.run,
    deliver.KIND: deliver.run,
    transfer.KIND: transfer.run,
    prefetch.KIND: prefetch.run,
    notify.KIND: notify.run,
    reconcile.KIND: reconcile.run,
    reconcile.EXPIRE_KIND: reconcile.expire,
}
