"""DCMTK's command-line tools as the outside DICOM peer (echoscu, storescu, findscu, ...).

Every tool runs with ``TCP_NODELAY=1`` in its environment: DCMTK then disables Nagle,
without which each DIMSE round trip waits for a delayed ACK (~40 ms).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pydicom
from pydicom.dataset import Dataset

from tests.peers.server import free_port

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TCP_NODELAY": "1"}
HOST = "127.0.0.1"
Arg = str | bytes  # bytes for keys in a character set other than the locale's


def run(tool: str, *args: Arg, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run one DCMTK tool; output decoded leniently (responses may hold any charset)."""
    result = subprocess.run(
        [tool, *args], env=ENV, capture_output=True, timeout=timeout, check=False
    )
    return subprocess.CompletedProcess(
        result.args,
        result.returncode,
        result.stdout.decode("utf-8", "replace"),
        result.stderr.decode("utf-8", "replace"),
    )


def echoscu(port: int, *, called: str = "RIX", calling: str = "ECHOSCU") -> int:
    return run("echoscu", "-aet", calling, "-aec", called, HOST, str(port)).returncode


# With -R storescu proposes, per SOP class, one context with the option's syntax alone and
# one with the other uncompressed syntaxes: the file's own syntax, alone, is accepted
# whatever the acceptor prefers, and storescu sends the file without converting it.
PROPOSE_ONLY = {
    "1.2.840.10008.1.2": "-xi",
    "1.2.840.10008.1.2.1": "-xe",
    "1.2.840.10008.1.2.2": "-xb",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreResponse:
    """One C-STORE response as storescu logged it."""

    path: Path
    status: int | None  # None: storescu did not send the file
    error_comment: str = ""


_SENDING = re.compile(r"^I: Sending file: (.*)$")
_STATUS = re.compile(r"^D: DIMSE Status\s*: 0x([0-9a-fA-F]{4})")
_COMMENT = re.compile(r"^D: \(0000,0902\) LO \[(.*)\]")


def storescu(
    port: int, files: Sequence[Path], transfer_syntax: str, *, called: str = "RIX"
) -> list[StoreResponse]:
    """Send ``files`` (all in ``transfer_syntax``) on one association; one answer per file."""
    result = run(
        "storescu",
        "-d",
        "-R",
        "-nh",
        PROPOSE_ONLY[transfer_syntax],
        "-aec",
        called,
        HOST,
        str(port),
        *map(str, files),
    )
    responses: list[StoreResponse] = []
    current: dict[str, object] = {}

    def flush() -> None:
        if current:
            responses.append(StoreResponse(**current))  # type: ignore[arg-type]
            current.clear()

    for line in (result.stdout + result.stderr).splitlines():
        if m := _SENDING.match(line):
            flush()
            current.update(path=Path(m.group(1)), status=None)
        elif current and (m := _STATUS.match(line)):
            current["status"] = int(m.group(1), 16)
        elif current and (m := _COMMENT.match(line)):
            current["error_comment"] = m.group(1)
    flush()
    assert len(responses) == len(files), result.stdout[-3000:] + result.stderr[-3000:]
    return responses


def keys(query: dict[str, Arg]) -> list[Arg]:
    """``-k keyword=value`` arguments; bytes values are passed as they are."""
    out: list[Arg] = []
    for keyword, value in query.items():
        if isinstance(value, bytes):
            out += ["-k", keyword.encode() + b"=" + value]
        else:
            out += ["-k", f"{keyword}={value}"]
    return out


def findscu(
    port: int, query: dict[str, Arg], folder: Path, *, study_root: bool = True
) -> list[Dataset]:
    """C-FIND with findscu; the responses as datasets (extracted by findscu -X)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("rsp*.dcm"):
        old.unlink()
    model = "-S" if study_root else "-P"
    result = run(
        "findscu", model, "-X", "-od", str(folder), "-aec", "RIX", HOST, str(port), *keys(query)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [pydicom.dcmread(p) for p in sorted(folder.glob("rsp*.dcm"))]


class StoreSCP:
    """A DCMTK storescp that writes what it receives exactly as received (``+B``)."""

    def __init__(self, folder: Path, *, ae_title: str = "STORESCP") -> None:
        self.folder = folder
        self.ae_title = ae_title
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log: IO[bytes]

    def start(self) -> StoreSCP:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log = (self.folder.parent / f"{self.folder.name}-storescp.log").open("ab")
        # +xa: accept every transfer syntax DCMTK knows, so nothing is converted
        args = ["+B", "+xa", "-aet", self.ae_title, "-od", str(self.folder), str(self.port)]
        self.process = subprocess.Popen(
            ["storescp", *args], env=ENV, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 10
        while echoscu(self.port, called=self.ae_title) != 0:
            assert self.process.poll() is None, "storescp exited"
            assert time.monotonic() < deadline, "storescp did not start"
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None
            self.log.close()

    def clear(self) -> None:
        for path in self.folder.iterdir():
            path.unlink()


@contextmanager
def storescp(folder: Path, *, ae_title: str = "STORESCP") -> Iterator[StoreSCP]:
    scp = StoreSCP(folder, ae_title=ae_title).start()
    try:
        yield scp
    finally:
        scp.stop()


# getscu proposes, as storage SCP, one preferred transfer syntax plus the uncompressed ones.
# Not implicit VR: getscu 3.6.7 +xi proposes Explicit VR Little Endian only.
GETSCU_PREFER = {
    "1.2.840.10008.1.2.1": "+xe",
    "1.2.840.10008.1.2.2": "+xb",
    "1.2.840.10008.1.2.1.99": "+xd",
    "1.2.840.10008.1.2.4.50": "+xy",
    "1.2.840.10008.1.2.4.51": "+xx",
    "1.2.840.10008.1.2.4.70": "+xs",
    "1.2.840.10008.1.2.4.80": "+xt",
    "1.2.840.10008.1.2.4.81": "+xu",
    "1.2.840.10008.1.2.4.90": "+xv",
    "1.2.840.10008.1.2.4.91": "+xw",
    "1.2.840.10008.1.2.5": "+xr",
}


def getscu(
    port: int, query: dict[str, Arg], folder: Path, *, transfer_syntax: str
) -> subprocess.CompletedProcess[str]:
    """C-GET with getscu, received files written bit for bit (+B) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    return run(
        "getscu",
        "-v",
        "-S",
        "+B",
        GETSCU_PREFER[transfer_syntax],
        "-od",
        str(folder),
        "-aec",
        "RIX",
        HOST,
        str(port),
        *keys(query),
    )


def movescu(
    port: int, query: dict[str, Arg], destination: str, *, calling: str = "MOVESCU"
) -> subprocess.CompletedProcess[str]:
    """C-MOVE with movescu to a destination rix knows from its AE registry."""
    return run(
        "movescu",
        "-v",
        "-S",
        "-aet",
        calling,
        "-aem",
        destination,
        "-aec",
        "RIX",
        HOST,
        str(port),
        *keys(query),
    )
