"""A destination that is down, and rix killed while it retries: once both are back, the
study arrives whole and no instance twice (``deliveries`` records what was acknowledged;
PS3.4 B.2.3: a repeated C-STORE of one SOP Instance is the only repeat there may be)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pydicom

from rix.workflow import turnaround_alerts
from tests.conftest import new_server
from tests.peers import dcmtk
from tests.peers.dcmtk import StoreSCP
from tests.routing import index
from tests.routing.studies import store, write_study

RULE = '[[rule]]\nname = "CT out"\n[rule.when]\nmodality = "CT"\n[rule.send]\nae = "DEST"\n'


class RecordingStoreSCP(StoreSCP):
    """A storescp writing every reception to a file of its own (``+uf``), so an instance
    received twice is two files (by default the second overwrites the first)."""

    def start(self) -> RecordingStoreSCP:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log = (self.folder.parent / f"{self.folder.name}-storescp.log").open("ab")
        args = ["+B", "+xa", "+uf", "-aet", self.ae_title, "-od", str(self.folder), str(self.port)]
        self.process = subprocess.Popen(
            ["storescp", *args], env=dcmtk.ENV, stdout=self.log, stderr=subprocess.STDOUT
        )
        index.wait_for(
            "storescp to answer C-ECHO",
            lambda: dcmtk.echoscu(self.port, called=self.ae_title) == 0,
            timeout=10,
        )
        return self

    def receptions(self) -> list[str]:
        """The SOP Instance UID of every file received, repeats included."""
        return sorted(
            str(pydicom.dcmread(p, stop_before_pixels=True).file_meta.MediaStorageSOPInstanceUID)
            for p in self.folder.iterdir()
        )


def test_a_study_for_a_destination_that_was_down_arrives_once_after_rix_was_killed(
    tmp_path: Path, migrated_database_url: str
) -> None:
    destination = RecordingStoreSCP(tmp_path / "dest", ae_title="DEST")  # not started yet
    server = new_server(
        tmp_path, database_url=migrated_database_url, extra_env={"RIX_STABLE_SECONDS": "1"}
    )
    server.add_ae("DEST", dcmtk.HOST, destination.port)
    (tmp_path / "rules.toml").write_text(RULE)
    server.rix("rules", "load", str(tmp_path / "rules.toml"))
    study = write_study(tmp_path / "media", count=8)
    try:
        server.start()
        store(server.dicom_port, "MODALITY", study)
        index.wait_for(
            "the send job to fail twice",
            lambda: [r for r in index.jobs(server, "send") if r.attempts >= 2 and r.last_error],
        )
        server.kill()

        destination.start()
        server.start()
        jobs = index.settled(server, {study.study_uid})
    finally:
        server.stop()
        destination.stop()

    assert destination.receptions() == sorted(study.datasets())
    assert index.delivered(server, "ae:DEST") == sorted(study.datasets())
    [send] = [r for r in jobs if r.kind == "send"]
    assert (send.state, send.done, send.total) == ("done", 8, 8)
    assert all(r.state == "done" for r in jobs)
    listed = server.rix("jobs", "list").stdout.strip().splitlines()
    summary = {state: int(n) for n, state in (p.split(" ", 1) for p in listed[-1].split(", "))}
    # nothing running or dead; pending only the worker's own recurring turnaround check
    recurring = index.jobs(server, turnaround_alerts.CHECK_KIND)
    assert summary.pop("pending", 0) == sum(r.state == "pending" for r in recurring) == 1
    assert summary == {"done": len(jobs) + sum(r.state == "done" for r in recurring)}
