"""The workflow's kinds of job and the function that runs each: the composition root
(``rix.serve``) adds this mapping to the job registry, so routing and the job queue never
import the workflow that sits above them.

Each kind is named where its jobs are queued: the SR of a signed report and its ORU^R01
(``rix.workflow.report_delivery``, ``rix.workflow.oru``), and the recurring turnaround
check (``rix.workflow.turnaround_alerts``).
"""

from __future__ import annotations

from rix.jobs.worker import Handler
from rix.workflow import oru, report_delivery, turnaround_alerts

HANDLERS: dict[str, Handler] = {
    report_delivery.STORE_KIND: report_delivery.store_sr,
    oru.KIND: report_delivery.send_oru,
    turnaround_alerts.CHECK_KIND: turnaround_alerts.run_check,
}
