"""The timed DICOM operations, done the same way against either server.

C-STORE and C-GET use DCMTK (``storescu``, ``getscu``); C-FIND and C-MOVE requests go
through ``scu.py``, a minimal blocking client, and C-MOVE sub-operations to a DCMTK
``storescp``. Both are fast C++ or single-threaded socket peers, so the client costs
little of the two cores and a figure is the server's. Every DCMTK process gets
``TCP_NODELAY=1`` and every client socket ``TCP_NODELAY``: with Nagle on, each DIMSE
round trip waits ~40 ms for a delayed ACK and the figures would measure a kernel timer.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset

import scu

LOOPBACK = "127.0.0.1"
CALLING_AE = "BENCH"
MAX_PDU = 131072  # what the DCMTK receivers advertise (DCMTK's maximum; 16 KiB is its default)
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}
STUDY_KEYS = (
    "PatientName", "PatientID", "StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber",
    "StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedInstances",
)  # fmt: skip
# All of these are among Orthanc's main DICOM tags or computed from its index, so neither
# server needs to open stored files to answer (Orthanc's StorageAccessOnFind stays default).


@dataclass(frozen=True, slots=True, kw_only=True)
class Peer:
    ae_title: str
    port: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """Seconds one operation took, and what went wrong in it (empty when nothing did)."""

    seconds: float
    problems: tuple[str, ...] = ()


def _associate(peer: Peer, abstract_syntax: str) -> scu.Association:
    return scu.Association(LOOPBACK, peer.port, CALLING_AE, peer.ae_title, abstract_syntax)


# --- C-STORE ---------------------------------------------------------------------------


def store(peer: Peer, files: Sequence[Path], associations: int, log_dir: Path) -> Outcome:
    """Send ``files`` over ``associations`` concurrent storescu processes, one each.

    Each process gets a contiguous share (whole studies, as separate modalities would
    send them). ``--no-halt`` keeps going after a refused store, so every refusal is
    counted and reported instead of cutting the measurement short.
    """
    shares = _contiguous(files, associations)
    logs = [log_dir / f"storescu-{peer.ae_title}-{i}.log" for i in range(associations)]
    processes = []
    start = time.perf_counter()
    for share, log in zip(shares, logs, strict=True):
        command = ["storescu", "--no-halt", "-aet", CALLING_AE, "-aec", peer.ae_title]
        command += [LOOPBACK, str(peer.port), *map(str, share)]
        with log.open("wb") as out:
            processes.append(
                subprocess.Popen(command, env=DCMTK_ENV, stdout=out, stderr=subprocess.STDOUT)
            )
    codes = [p.wait() for p in processes]
    seconds = time.perf_counter() - start
    problems = []
    for code, log in zip(codes, logs, strict=True):
        lines = log.read_text(errors="replace").splitlines()
        errors = [line for line in lines if line.startswith(("E:", "F:"))]
        if code != 0 or errors:
            problems.append(f"storescu exit {code}: " + " | ".join(errors[:6]))
    return Outcome(seconds=seconds, problems=tuple(problems))


def _contiguous(files: Sequence[Path], parts: int) -> list[list[Path]]:
    size, extra = divmod(len(files), parts)
    shares, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        shares.append(list(files[start:end]))
        start = end
    return shares


# --- C-FIND ----------------------------------------------------------------------------


def study_query(**matching: str) -> Dataset:
    """A Study Root STUDY-level identifier asking for ``STUDY_KEYS``, some of them matched."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    for keyword in STUDY_KEYS:
        setattr(ds, keyword, matching.get(keyword, ""))
    return ds


@dataclass(frozen=True, slots=True, kw_only=True)
class FindAnswer:
    seconds: float
    matches: int
    status: int
    instances: int = 0  # sum of NumberOfStudyRelatedInstances, when decoded


Finder = Callable[..., FindAnswer]


@contextmanager
def find_session(peer: Peer) -> Iterator[Finder]:
    """One association kept open; each call times one C-FIND until its final response.

    Identifiers are only counted while timing; ``decode=True`` (untimed checks) also
    reads NumberOfStudyRelatedInstances from each.
    """
    assoc = _associate(peer, scu.STUDY_ROOT_FIND)
    try:

        def find(query: Dataset, decode: bool = False) -> FindAnswer:
            matches = instances = 0
            status = -1
            start = time.perf_counter()
            for response in assoc.request(scu.C_FIND_RQ, scu.STUDY_ROOT_FIND, query):
                status = response.status
                if response.is_pending and response.identifier is not None:
                    matches += 1
                    if decode:
                        count = response.dataset().get("NumberOfStudyRelatedInstances")
                        instances += int(count or 0)
            seconds = time.perf_counter() - start
            return FindAnswer(seconds=seconds, matches=matches, instances=instances, status=status)

        yield find
    finally:
        assoc.close()


def stored_instances(peer: Peer) -> int:
    """How many instances the server reports over all studies (a C-FIND, untimed)."""
    with find_session(peer) as find:
        return find(study_query(), decode=True).instances


# --- C-MOVE and C-GET ------------------------------------------------------------------


def move(peer: Peer, study_uid: str, destination_ae: str, expected: int) -> Outcome:
    """C-MOVE one study to ``destination_ae``; timed from association request to release."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = study_uid
    start = time.perf_counter()
    assoc = _associate(peer, scu.STUDY_ROOT_MOVE)
    final: scu.Response | None = None
    try:
        for response in assoc.request(scu.C_MOVE_RQ, scu.STUDY_ROOT_MOVE, ds, destination_ae):
            final = response
    finally:
        assoc.close()
    seconds = time.perf_counter() - start
    return Outcome(seconds=seconds, problems=_retrieve_problems(final, expected))


def _retrieve_problems(final: scu.Response | None, expected: int) -> tuple[str, ...]:
    if final is None:
        return ("no final C-MOVE response",)
    completed = final.command.get(scu.COMPLETED, 0)
    failed = final.command.get(scu.FAILED, 0)
    if final.status == 0 and completed == expected and not failed:
        return ()
    return (f"status 0x{final.status:04X}, {completed} completed, {failed} failed of {expected}",)


_COMPLETED = re.compile(r"Completed Suboperations\s*:\s*(\d+)", re.IGNORECASE)


def get(peer: Peer, study_uid: str, expected: int, log_dir: Path) -> Outcome:
    """C-GET one study with getscu, received and discarded (``--ignore``)."""
    command = ["getscu", "-v", "-S", "-aet", CALLING_AE, "-aec", peer.ae_title]
    command += ["-pdu", str(MAX_PDU), "--ignore", "-k", "QueryRetrieveLevel=STUDY"]
    command += ["-k", f"StudyInstanceUID={study_uid}", LOOPBACK, str(peer.port)]
    log = log_dir / f"getscu-{peer.ae_title}.log"
    start = time.perf_counter()
    with log.open("wb") as out:
        code = subprocess.run(
            command, env=DCMTK_ENV, stdout=out, stderr=subprocess.STDOUT, check=False
        ).returncode
    seconds = time.perf_counter() - start
    text = log.read_text(errors="replace")
    counts = [int(n) for n in _COMPLETED.findall(text)]
    completed = counts[-1] if counts else 0
    errors = [line for line in text.splitlines() if line.startswith(("E:", "F:"))]
    if code == 0 and completed == expected and not errors:
        return Outcome(seconds=seconds)
    detail = f"getscu exit {code}, {completed} of {expected} completed; " + " | ".join(errors[:6])
    return Outcome(seconds=seconds, problems=(detail,))
