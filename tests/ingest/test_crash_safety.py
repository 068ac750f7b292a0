"""Acknowledged means durable: SIGKILL during a storescu run loses nothing acknowledged."""

from __future__ import annotations

import random
import re
import subprocess
import time
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from rix.dataset.parsing import split_file
from tests.peers.server import RixServer
from tests.peers.synthetic import write_series

ROUNDS = 5
INSTANCES = 300
_SENDING = re.compile(r"Sending file: (\S+)")
_SUCCESS = "Received Store Response (Success)"


def acknowledged(storescu_output: str) -> list[Path]:
    """Files storescu got a Success response for (it logs each file, then its response)."""
    done, current = [], None
    for line in storescu_output.splitlines():
        sending = _SENDING.search(line)
        if sending:
            current = Path(sending.group(1))
        elif _SUCCESS in line and current is not None:
            done.append(current)
            current = None
    return done


def stored_object(server: RixServer, sent: Path) -> Path:
    ds = dcmread(sent, stop_before_pixels=True)
    return (
        server.data
        / "objects"
        / ds.StudyInstanceUID
        / ds.SeriesInstanceUID
        / f"{ds.SOPInstanceUID}.dcm"
    )


def indexed_instances(server: RixServer, study_uid: str) -> set[str]:
    """SOP Instance UIDs the index answers for a study, asked over C-FIND as a PACS would."""
    ae = AE(ae_title="CRASHTEST")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title="RIX")
    assert assoc.is_established
    query = Dataset()
    query.QueryRetrieveLevel = "IMAGE"
    query.StudyInstanceUID = study_uid
    query.SeriesInstanceUID = ""
    query.SOPInstanceUID = ""
    found = set()
    for status, identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
        if status and status.Status == 0xFF00:
            found.add(str(identifier.SOPInstanceUID))
    assoc.release()
    return found


def dataset_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return data[split_file(data).dataset_offset :]


@pytest.mark.slow
def test_sigkill_during_storescu_loses_no_acknowledged_instance(
    tmp_path: Path, migrated_database_url: str
) -> None:
    server = RixServer(data=tmp_path / "data", database_url=migrated_database_url)
    rng = random.Random(20261127)
    all_acknowledged: list[Path] = []
    server.start()  # each round sends to the server restarted after the last round's kill
    try:
        for round_ in range(ROUNDS):
            files = write_series(
                tmp_path / f"round{round_}", INSTANCES, patient_id=f"CRASH{round_}"
            )
            sender = subprocess.Popen(
                [
                    "storescu",
                    "-v",
                    "-aec",
                    "RIX",
                    "127.0.0.1",
                    str(server.dicom_port),
                    *map(str, files),
                ],
                env={**server.env, "TCP_NODELAY": "1"},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            time.sleep(rng.uniform(0.2, 1.5))
            server.kill()
            output, _ = sender.communicate(timeout=60)
            acked = acknowledged(output)
            assert len(acked) < INSTANCES, "the kill came after the run ended; nothing was tested"
            all_acknowledged.extend(acked)
            server.start()
            for sent in all_acknowledged:
                stored = stored_object(server, sent)
                assert stored.exists(), f"acknowledged {sent.name} is missing after SIGKILL"
                assert dataset_bytes(stored) == dataset_bytes(sent)
            study_uid = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
            indexed = indexed_instances(server, study_uid)
            assert {p.stem for p in acked} <= indexed, "acknowledged but not indexed"
            verify = server.rix("verify", check=False)
            assert verify.returncode == 0, verify.stdout
    finally:
        server.stop()
    assert len(all_acknowledged) > 0
