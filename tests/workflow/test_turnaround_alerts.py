"""A breach alert fires exactly once: concurrent and repeated checks raise each alert
one time, and it reaches a real webhook and a real SMTP server carrying no patient
identifiers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from rix.archive import Archive
from rix.index.schema import jobs
from rix.index.workflow_tables import turnaround_alerts as alert_rows
from rix.jobs.queue import State
from rix.jobs.worker import Workers
from rix.serve import job_handlers
from rix.workflow import turnaround_alerts
from tests.jobs.webhook import Recorder
from tests.peers.archive import opened
from tests.peers.smtp import SmtpServer, body
from tests.workflow.week import NOW, Week, load_week

EMH_DESK = "emh-reporting@example.org"
REGION_DESK = "region-imaging@example.org"


@pytest.fixture
def alerting(
    tmp_path: Path, migrated_database_url: str
) -> Iterator[tuple[Archive, Week, Recorder, SmtpServer]]:
    with Recorder() as webhook, SmtpServer() as smtp:
        settings = {
            "turnaround_backlog": 2,
            "turnaround_webhook": webhook.url,
            "turnaround_email": f"EMH={EMH_DESK}, {REGION_DESK}",
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "public_url": "https://rix.region.example",
        }
        with opened(tmp_path / "data", migrated_database_url, **settings) as archive:
            yield archive, load_week(archive), webhook, smtp


def queued(archive: Archive, kind: str) -> int:
    with archive.engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(jobs.c.kind == kind)).scalar_one())


def run_jobs_until_idle(archive: Archive) -> None:
    workers = Workers(archive, job_handlers(), 2).start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with archive.engine.connect() as conn:
                left = conn.execute(
                    select(func.count()).where(
                        jobs.c.state.in_([State.PENDING.value, State.RUNNING.value])
                    )
                ).scalar_one()
            if not left:
                return
            time.sleep(0.1)
    finally:
        workers.stop()


def test_a_breach_alert_fires_exactly_once(
    alerting: tuple[Archive, Week, Recorder, SmtpServer],
) -> None:
    archive, week, webhook, smtp = alerting
    start = threading.Barrier(2)
    raised: list[int] = []

    def check() -> None:
        start.wait()
        raised.append(turnaround_alerts.check(archive, archive.settings, now=NOW))

    threads = [threading.Thread(target=check) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    raised.append(turnaround_alerts.check(archive, archive.settings, now=NOW))
    raised.append(turnaround_alerts.check(archive, archive.settings, now=NOW + 60))
    # a2, a3, a4 past target unreported; r2, r4 reported late; EMH's backlog of 5 > 2
    assert sorted(raised) == [0, 0, 0, 6]
    with archive.engine.connect() as conn:
        keys = set(conn.execute(select(alert_rows.c.key)).scalars())
    breaches = {f"breach:{week.uids[n]}" for n in ("a2", "a3", "a4", "r2", "r4")}
    assert keys == breaches | {"backlog:EMH:2025-03-14"}
    assert (queued(archive, "notify"), queued(archive, "email")) == (6, 3)

    run_jobs_until_idle(archive)
    bodies = webhook.wait_for(6, timeout=30)
    assert sorted(b["event"] for b in bodies) == ["turnaround-backlog"] + ["turnaround-breach"] * 5
    assert {b["study_uid"] for b in bodies if "study_uid" in b} == {
        week.uids[n] for n in ("a2", "a3", "a4", "r2", "r4")
    }
    late = next(b for b in bodies if b.get("study_uid") == week.uids["a4"])
    assert (late["trust"], late["modality"], late["priority"]) == ("EMH", "MR", "outpatient")
    assert late["late_seconds"] == 3 * 86400
    assert "EMH-1" not in json.dumps(bodies)  # no hospital number

    [to_emh] = smtp.mailbox.wait_for(EMH_DESK)
    region = smtp.mailbox.wait_for(REGION_DESK, count=2)
    assert sorted(m["Subject"] for m in region) == [
        "rix EMH: 4 turnaround breaches, backlog of 5",
        "rix NGH: 1 turnaround breach",
    ]
    text = body(to_emh)
    assert "- outpatient MR: 3d 0h past its 7d 0h target, still unreported" in text
    assert "- emergency CT: 2h 0m past its 1h 0m target, reported" in text
    assert "https://rix.region.example/turnaround?trust=EMH" in text
    for identifier in ("EMH-1", "ACC", "1.2.826", *week.uids.values()):
        assert identifier not in text
    assert len(smtp.mailbox.messages) == 3


def test_the_check_is_a_recurring_job(
    alerting: tuple[Archive, Week, Recorder, SmtpServer],
) -> None:
    archive = alerting[0]
    turnaround_alerts.schedule_check(archive)
    turnaround_alerts.schedule_check(archive)  # a second node starting: still one pending
    assert queued(archive, turnaround_alerts.CHECK_KIND) == 1
    before = time.time()
    workers = Workers(archive, job_handlers(), 1).start()
    try:
        deadline = time.monotonic() + 60
        while queued(archive, turnaround_alerts.CHECK_KIND) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        workers.stop()
    with archive.engine.connect() as conn:
        rows = conn.execute(
            select(jobs.c.state, jobs.c.run_at)
            .where(jobs.c.kind == turnaround_alerts.CHECK_KIND)
            .order_by(jobs.c.id)
        ).all()
        keys = set(conn.execute(select(alert_rows.c.key)).scalars())
    assert [r.state for r in rows] == ["done", "pending"]
    assert rows[1].run_at >= before + archive.settings.turnaround_check_minutes * 60
    # today the week's deadlines are long past (no news), but EMH's backlog is still there
    assert any(k.startswith("backlog:EMH:") for k in keys)
