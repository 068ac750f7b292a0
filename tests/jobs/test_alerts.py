"""A job that keeps failing is dead-lettered by a live ``rix serve`` and the alert
reaches a real webhook, once."""

from __future__ import annotations

import re
import time
from pathlib import Path

from pydicom.uid import generate_uid

from rix.archive import Archive
from rix.index.database import begin_write
from rix.jobs import queue
from rix.jobs.queue import Job, Priority, State
from rix.routing import deliver
from rix.routing.rules import Destination
from tests.jobs.webhook import Recorder
from tests.peers import scu
from tests.peers.archive import opened
from tests.peers.server import RixServer, free_port
from tests.peers.synthetic import ct_slice

# 2.7 s: the first retry (1 s after the first attempt) falls within it, so the job fails
# twice; the next (2 s after the second) falls after it, so it is dead-lettered then
GIVE_UP_HOURS = "0.00075"


def wait_for_state(archive: Archive, pk: int, state: State) -> Job:
    """The job once in ``state``, or as it is after a generous timeout."""
    deadline = time.monotonic() + 60
    while True:
        with archive.engine.connect() as conn:
            job = queue.get(conn, pk)
        if job.state is state or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def store_one_study(server: RixServer) -> str:
    study_uid = str(generate_uid())
    ds = ct_slice(
        patient_id="ALERT-1",
        patient_name="Alert^Test",
        study_uid=study_uid,
        series_uid=str(generate_uid()),
        number=1,
    )
    assert scu.store_datasets(server.dicom_port, [ds]) == [0x0000]
    return study_uid


def test_dead_lettered_send_posts_one_alert_to_the_webhook(
    tmp_path: Path, migrated_database_url: str
) -> None:
    with Recorder() as webhook:
        server = RixServer(
            data=tmp_path / "data",
            database_url=migrated_database_url,
            extra_env={
                "RIX_ALERT_WEBHOOK": webhook.url,
                "RIX_PUBLIC_URL": "https://rix.region.example",  # alerts link to it
                "RIX_JOB_GIVE_UP_HOURS": GIVE_UP_HOURS,
                "RIX_STABLE_SECONDS": "3600",  # the study's stability job stays out of it
            },
        ).start()
        try:
            # a registered PACS with nothing listening on its port
            server.add_ae("NOWHERE", "127.0.0.1", free_port())
            study_uid = store_one_study(server)
            with opened(server.data, migrated_database_url, migrate=False) as archive:
                with begin_write(archive.engine) as conn:
                    pk = deliver.schedule(
                        conn,
                        study_uid=study_uid,
                        destination=Destination(ae="NOWHERE"),
                        priority=Priority.URGENT,
                        reason="test",
                    )
                dead = wait_for_state(archive, pk, State.DEAD)
                assert dead.state is State.DEAD, dead
                assert dead.attempts >= 2, "dead-lettered at the first failure"
                assert "Unreachable" in dead.last_error
                webhook.wait_for(1, timeout=30)
                with archive.engine.connect() as conn:
                    alert_jobs = queue.listing(conn, kind="notify")
                assert len(alert_jobs) == 1, "one alert job for one dead job"
                assert wait_for_state(archive, alert_jobs[0].pk, State.DONE).state is State.DONE
            listed = server.rix("jobs", "list", "--state", "dead").stdout
        finally:
            server.stop()
        alerts = webhook.received()
    assert len(alerts) == 1, alerts
    assert alerts[0]["event"] == "job-dead-lettered"
    assert alerts[0]["job"] == pk
    assert alerts[0]["kind"] == "send"
    assert alerts[0]["attempts"] == dead.attempts
    assert re.search(rf"\b{pk}\b.*\bsend\b.*\bdead\b", listed), listed
