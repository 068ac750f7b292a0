"""``rix serve`` as it is deployed on one machine: SQLite and files in one data folder.

Started with ``python -m rix.cli serve`` from the venv running the benchmark, configured
only through ``RIX_*`` variables (inherited ``RIX_*`` are dropped so a developer's shell
cannot change what is measured). The C-MOVE destination is registered with
``rix ae add`` on the same data folder before the server opens it, and the benchmark's
calling AE and DICOMweb user are made a trust's, as a region would run them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from dimse import CALLING_AE, Peer
from network import LOOPBACK, free_port, wait_for_port
from processes import stop, tethered

ROOT = Path(__file__).resolve().parents[1]


@dataclass(kw_only=True)
class RixServer:
    """One ``rix serve`` at a time; ``start_empty`` replaces it with one on a fresh folder."""

    root: Path
    move_destination: Peer
    ae_title: str = "RIX"
    dicom_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    name: str = "rix"
    process: subprocess.Popen[bytes] | None = None
    generation: int = 0
    token: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)  # RIX_* a part of the bench sets

    @property
    def peer(self) -> Peer:
        return Peer(ae_title=self.ae_title, port=self.dicom_port)

    @property
    def dicomweb(self) -> str:
        """The root ``rix.web.app`` mounts QIDO-RS, WADO-RS and STOW-RS under."""
        return f"http://{LOOPBACK}:{self.http_port}/dicomweb"

    @property
    def auth(self) -> dict[str, str]:
        """What every DICOMweb request carries: rix has no anonymous HTTP."""
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def data(self) -> Path:
        return self.root / f"data-{self.generation}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RIX_")}
        env.update(
            RIX_DATA=str(self.data),
            RIX_DATABASE_URL="",
            RIX_DICOM_HOST=LOOPBACK,
            RIX_DICOM_PORT=str(self.dicom_port),
            RIX_HTTP=f"{LOOPBACK}:{self.http_port}",
            RIX_AE_TITLE=self.ae_title,
            RIX_ACCEPT_ANY_AE="true",
            TCP_NODELAY="1",
        )
        env.update(self.extra_env)
        return env

    def cli(self, *args: str) -> str:
        """Run a ``rix`` command against this server's data folder; raise with its output."""
        result = subprocess.run(
            [sys.executable, "-m", "rix.cli", *args],
            env=self.env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"rix {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result.stdout

    def start_empty(self) -> None:
        """Stop, then start on a new, empty data folder (the previous one is deleted)."""
        self.stop()
        shutil.rmtree(self.data, ignore_errors=True)
        self.generation += 1
        self.data.mkdir(parents=True)
        dest = self.move_destination
        # as deployed: the benchmark's SCU and STOW-RS user belong to a trust, so every
        # query and retrieve runs through the access filter and writes its audit event
        self.cli("trust", "add", "BENCH", "--name", "Benchmark Trust")
        self.cli("ae", "add", dest.ae_title, "--host", LOOPBACK, "--port", str(dest.port))
        self.cli("ae", "add", CALLING_AE, "--host", LOOPBACK, "--port", "104", "--trust", "BENCH")
        self.cli("user", "add", "bench", "--roles", "radiologist", "--trust", "BENCH")
        self.token = self.cli("token", "create", "bench").strip()
        log = (self.root / "rix-serve.log").open("ab")
        self.process = subprocess.Popen(
            tethered([sys.executable, "-m", "rix.cli", "serve"]),
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        log.close()
        self._wait_healthy(timeout=60)

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://{LOOPBACK}:{self.http_port}/healthz"
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                tail = (self.root / "rix-serve.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"rix serve exited on start:\n{tail}")
            try:
                with urllib.request.urlopen(url, timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise TimeoutError("rix serve did not answer /healthz")
        wait_for_port(self.dicom_port, timeout=10)

    def stop(self) -> None:
        stop(self.process)
        self.process = None
