"""The C-MOVE destination: a DCMTK ``storescp`` that receives and discards (``--ignore``).

Discarding keeps the receiver's disk out of the figure, so C-MOVE MB/s is the sender's.
Each server gets its own storescp: storescp serves one association at a time, and
Orthanc keeps its C-STORE SCU association open for a few seconds after a move
(``DicomAssociationCloseDelay``), which would stall the other server's next move.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from dimse import DCMTK_ENV, MAX_PDU, Peer
from network import free_port, wait_for_port
from processes import stop, tethered


@dataclass(kw_only=True)
class StoreSCP:
    log: Path
    ae_title: str = "DEST"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def peer(self) -> Peer:
        return Peer(ae_title=self.ae_title, port=self.port)

    def start(self) -> StoreSCP:
        command = ["storescp", "--ignore", "-aet", self.ae_title, "-pdu", str(MAX_PDU)]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                tethered([*command, str(self.port)]),
                env=DCMTK_ENV,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        process = self.process
        wait_for_port(self.port, timeout=10, alive=lambda: process.poll() is None)
        return self

    def stop(self) -> None:
        stop(self.process)
        self.process = None
