"""The facts a result is meaningless without: machine, versions, rix commit.

Figures from different machines or commits are only comparable when these are known,
so every entry appended to RESULTS.md starts with them.
"""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True, kw_only=True)
class Facts:
    cores: int
    cpu: str
    memory_gib: float
    kernel: str
    python: str
    orthanc: str
    dicomweb_plugin: str
    dcmtk: str
    pydicom: str
    pynetdicom: str
    rix_commit: str
    isolated: bool

    def lines(self) -> list[str]:
        return [
            f"machine: {self.cores} cores ({self.cpu}), {self.memory_gib:.0f} GiB RAM, "
            f"Linux {self.kernel}",
            f"software: Python {self.python}, Orthanc {self.orthanc} "
            f"(DICOMweb plugin {self.dicomweb_plugin}), DCMTK {self.dcmtk}, "
            f"pydicom {self.pydicom}, pynetdicom {self.pynetdicom}",
            f"rix commit: {self.rix_commit}",
            "network: private loopback-only namespace"
            if self.isolated
            else "network: host namespace (Orthanc and storescp listened on all interfaces)",
        ]


def gather(*, orthanc: str, dicomweb_plugin: str, isolated: bool) -> Facts:
    return Facts(
        cores=os.cpu_count() or 0,
        cpu=_cpu_model(),
        memory_gib=os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
        kernel=platform.release(),
        python=platform.python_version(),
        orthanc=orthanc,
        dicomweb_plugin=dicomweb_plugin,
        dcmtk=_dcmtk_version(),
        pydicom=version("pydicom"),
        pynetdicom=version("pynetdicom"),
        rix_commit=rix_commit(),
        isolated=isolated,
    )


def rix_commit() -> str:
    """Short commit, marked when src/ differs from it (others edit src/ during a run)."""
    head = _git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = _git("status", "--porcelain", "--", "src")
    return f"{head} + uncommitted changes in src/" if dirty else head


def _git(*args: str) -> str:
    try:
        result = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False, timeout=10
        )
    except OSError:
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _dcmtk_version() -> str:
    try:
        out = subprocess.run(
            ["storescu", "--version"], capture_output=True, text=True, check=False
        ).stdout
    except OSError:
        return "unknown"
    first = out.splitlines()[0] if out else ""
    parts = first.split()
    return parts[2].lstrip("v") if len(parts) > 2 else "unknown"
