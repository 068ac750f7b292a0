"""Orthanc from the Debian package, the reference rix is measured against.

Configured for the same durability as rix (``SyncStorageArea``: every file fsynced; its
SQLite index commits before the C-STORE answer) and otherwise as shipped: the storage
cache, ``StorageAccessOnFind`` and thread counts keep their defaults. ``TCP_NODELAY=1``
goes in its environment: DCMTK, which Orthanc's DICOM server is built on, leaves Nagle on
otherwise and every DIMSE round trip then waits ~40 ms for a delayed ACK. The DICOMweb
plugin gets only its root; the rest is as shipped: case-sensitive QIDO
(``QidoCaseSensitive``), series metadata read from the stored files (``SeriesMetadata``
``Full``), and Orthanc gzips answers a client accepts gzip for (``HttpCompressionEnabled``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dimse import Peer
from network import LOOPBACK, free_port, wait_for_port
from processes import stop, tethered

BINARY = Path("/usr/sbin/Orthanc")
PLUGINS = Path("/usr/share/orthanc/plugins")
DICOMWEB_PLUGIN = PLUGINS / "libOrthancDicomWeb.so"
DICOMWEB_ROOT = "/dicom-web/"


@dataclass(kw_only=True)
class OrthancServer:
    """One Orthanc process at a time; ``start_empty`` replaces it with one on fresh storage."""

    root: Path
    move_destination: Peer
    ae_title: str = "ORTHANC"
    dicom_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    name: str = "Orthanc"
    process: subprocess.Popen[bytes] | None = None
    generation: int = 0

    @property
    def peer(self) -> Peer:
        return Peer(ae_title=self.ae_title, port=self.dicom_port)

    @property
    def dicomweb(self) -> str:
        """The plugin's DICOMweb root, configured in ``config`` (its other options as shipped)."""
        return f"http://{LOOPBACK}:{self.http_port}{DICOMWEB_ROOT.rstrip('/')}"

    @property
    def auth(self) -> dict[str, str]:
        """Orthanc runs as shipped on loopback, without authentication: rix pays for its
        own (a token look-up and an audit event per request), Orthanc pays nothing."""
        return {}

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def config(self, storage: Path) -> dict[str, Any]:
        dest = self.move_destination
        return {
            "Name": "rix-bench",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "StorageCompression": False,
            "SyncStorageArea": True,
            "DicomAet": self.ae_title,
            "DicomPort": self.dicom_port,
            "HttpPort": self.http_port,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowMove": True,
            "DicomAlwaysAllowGet": True,
            "DicomModalities": {dest.ae_title: [dest.ae_title, LOOPBACK, dest.port]},
            "AuthenticationEnabled": False,
            "RemoteAccessAllowed": False,
            "LimitFindResults": 0,
            "LimitFindInstances": 0,
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": DICOMWEB_ROOT},
        }

    def start_empty(self) -> None:
        """Stop, then start on a new, empty storage folder (the previous one is deleted)."""
        self.stop()
        shutil.rmtree(self.root / f"storage-{self.generation}", ignore_errors=True)
        self.generation += 1
        storage = self.root / f"storage-{self.generation}"
        storage.mkdir(parents=True)
        config_path = self.root / "orthanc.json"
        config_path.write_text(json.dumps(self.config(storage), indent=2))
        log = (self.root / "orthanc.log").open("ab")
        self.process = subprocess.Popen(
            tethered([str(BINARY), str(config_path)]),
            env=dict(os.environ, TCP_NODELAY="1"),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
        )
        log.close()
        self._wait_alive(timeout=60)

    def _wait_alive(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                tail = (self.root / "orthanc.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"Orthanc exited on start:\n{tail}")
            try:
                self.system()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise TimeoutError("Orthanc did not answer /system")
        wait_for_port(self.dicom_port, timeout=10)

    def system(self) -> dict[str, Any]:
        """GET /system: the liveness check, and where the version comes from."""
        return dict(self._get("/system"))

    def plugins(self) -> list[str]:
        """GET /plugins: checks the DICOMweb plugin really loaded."""
        return list(self._get("/plugins"))

    def _get(self, path: str) -> Any:
        url = f"http://{LOOPBACK}:{self.http_port}{path}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        stop(self.process)
        self.process = None
