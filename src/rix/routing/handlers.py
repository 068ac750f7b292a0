"""Which function runs each kind of job."""

from __future__ import annotations

from rix.ingest import reconcile
from rix.jobs import mail, webhook
from rix.jobs.worker import Handler
from rix.routing import deliver, prefetch, stability, transfer
from rix.workflow import oru, reports, turnaround

HANDLERS: dict[str, Handler] = {
    stability.KIND: stability.run,
    deliver.KIND: deliver.run,
    transfer.KIND: transfer.run,
    prefetch.KIND: prefetch.run,
    webhook.KIND: webhook.run,
    reconcile.KIND: reconcile.run,
    reconcile.EXPIRE_KIND: reconcile.expire,
    mail.KIND: mail.run,
    turnaround.CHECK_KIND: turnaround.run_check,
    reports.STORE_KIND: reports.store_sr,
    oru.KIND: reports.send_oru,
}
