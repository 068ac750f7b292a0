"""The figures, their targets, the console table and the dated entry in RESULTS.md.

Each figure is the median of its samples (the median resists one disturbed run on a
shared two-core machine better than the mean). The ratio is always rix/Orthanc: for
throughput higher is better, for latency lower is better, and each target says which.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from facts import Facts

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SERVERS = ("rix", "Orthanc")


@dataclass(frozen=True, slots=True, kw_only=True)
class Figure:
    """One measured quantity; ``target`` bounds rix/Orthanc (>= if higher is better)."""

    key: str
    label: str
    unit: str
    higher_is_better: bool
    target: float | None = None
    part: str = "dimse"

    @property
    def better(self) -> str:
        return "higher" if self.higher_is_better else "lower"

    def target_text(self) -> str:
        if self.target is None:
            return "-"
        return f"{'>=' if self.higher_is_better else '<='} {self.target:g}x"

    def met(self, ratio: float) -> bool | None:
        if self.target is None:
            return None
        return ratio >= self.target if self.higher_is_better else ratio <= self.target


FIGURES = (
    Figure(key="store_small_1", label="C-STORE small, 1 association", unit="inst/s",
           higher_is_better=True),
    Figure(key="store_small_4", label="C-STORE small, 4 associations", unit="inst/s",
           higher_is_better=True, target=1.5),
    Figure(key="store_ct", label="C-STORE CT 300x512x512, 1 association", unit="MB/s",
           higher_is_better=True, target=1.5),
    Figure(key="find_name", label="C-FIND studies PatientName=SMI*", unit="ms",
           higher_is_better=False, target=0.5),
    Figure(key="find_date", label="C-FIND studies StudyDate range", unit="ms",
           higher_is_better=False, target=0.5),
    Figure(key="find_modality", label="C-FIND studies ModalitiesInStudy=MR", unit="ms",
           higher_is_better=False, target=0.5),
    Figure(key="find_all", label="C-FIND all studies (universal)", unit="ms",
           higher_is_better=False, target=0.5),
    Figure(key="move_ct", label="C-MOVE CT study to storescp", unit="MB/s",
           higher_is_better=True, target=1.0),
    Figure(key="get_ct", label="C-GET CT study with getscu", unit="MB/s",
           higher_is_better=True, target=1.0),
    Figure(key="qido_name", label="QIDO-RS studies PatientName=SMI*", unit="ms",
           higher_is_better=False, target=0.3, part="dicomweb"),
    Figure(key="qido_fuzzy", label="QIDO-RS studies PatientName=smi, fuzzymatching", unit="ms",
           higher_is_better=False, target=0.3, part="dicomweb"),
    Figure(key="qido_date", label="QIDO-RS studies StudyDate range", unit="ms",
           higher_is_better=False, target=0.3, part="dicomweb"),
    Figure(key="qido_modality", label="QIDO-RS studies ModalitiesInStudy=MR", unit="ms",
           higher_is_better=False, target=0.3, part="dicomweb"),
    Figure(key="qido_page", label="QIDO-RS studies, first page (limit=100)", unit="ms",
           higher_is_better=False, target=0.3, part="dicomweb"),
    Figure(key="metadata_gzip", label="WADO-RS CT series metadata, gzip", unit="ms",
           higher_is_better=False, target=0.1, part="dicomweb"),
    Figure(key="metadata_plain", label="WADO-RS CT series metadata, uncompressed", unit="ms",
           higher_is_better=False, part="dicomweb"),
    Figure(key="series_rate", label="WADO-RS CT series, multipart DICOM", unit="MB/s",
           higher_is_better=True, target=1.0, part="dicomweb"),
    Figure(key="series_first_byte", label="WADO-RS CT series, time to first byte", unit="ms",
           higher_is_better=False, target=0.5, part="dicomweb"),
    Figure(key="frame", label="WADO-RS CT frames/1, gzip accepted", unit="ms",
           higher_is_better=False, target=1.0, part="dicomweb"),
    Figure(key="frame_plain", label="WADO-RS CT frames/1, uncompressed", unit="ms",
           higher_is_better=False, target=1.0, part="dicomweb"),
    Figure(key="stow", label="STOW-RS small, 50 instances a request", unit="inst/s",
           higher_is_better=True, part="dicomweb"),
)  # fmt: skip
BY_KEY = {f.key: f for f in FIGURES}
PARTS = ("dimse", "dicomweb")


def figures(parts: Sequence[str]) -> list[Figure]:
    """The figures of the parts that ran, in table order."""
    return [f for f in FIGURES if f.part in parts]


@dataclass
class Results:
    """Samples per figure and server, plus everything that went wrong or looked wrong."""

    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, key: str, server: str, value: float) -> None:
        self.samples.setdefault(key, {}).setdefault(server, []).append(value)

    def median(self, key: str, server: str) -> float | None:
        values = self.samples.get(key, {}).get(server)
        return statistics.median(values) if values else None

    def ratio(self, key: str) -> float | None:
        rix, orthanc = self.median(key, "rix"), self.median(key, "Orthanc")
        if rix is None or not orthanc:
            return None
        return rix / orthanc


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"


def _spread(values: list[float]) -> str:
    """All samples when few; n, min, median and max when many (C-FIND's 30)."""
    if len(values) <= 5:
        return ", ".join(_number(v) for v in values) or "-"
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"n={len(values)}, min {_number(low)}, median {_number(mid)}, max {_number(high)}"


def _row(results: Results, figure: Figure) -> list[str]:
    ratio = results.ratio(figure.key)
    met = figure.met(ratio) if ratio is not None else None
    return [
        figure.label,
        figure.unit,
        figure.better,
        _number(results.median(figure.key, "rix")),
        _number(results.median(figure.key, "Orthanc")),
        "-" if ratio is None else f"{ratio:.2f}",
        figure.target_text(),
        {True: "yes", False: "NO", None: "-"}[met],
    ]


HEADERS = ("measurement", "unit", "better", "rix", "Orthanc", "rix/Orthanc", "target", "met")


def print_table(console: Console, results: Results, parts: Sequence[str] = PARTS) -> None:
    table = Table(title="rix vs Orthanc (medians)")
    for header in HEADERS:
        table.add_column(header, justify="left" if header == "measurement" else "right")
    shown = figures(parts)
    for figure, following in zip(shown, [*shown[1:], None], strict=True):
        ends_part = following is not None and following.part != figure.part
        table.add_row(*_row(results, figure), end_section=ends_part)
    console.print(table)
    for line in results.notes:
        console.print(f"note: {line}")
    for line in results.problems:
        console.print(f"[red]problem:[/red] {line}")


def markdown(
    results: Results, facts: Facts, duration: float, settings: str, parts: Sequence[str] = PARTS
) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    shown = figures(parts)
    lines = [f"## {when}", ""]
    lines += [f"- {line}" for line in facts.lines()]
    lines += [f"- run: {duration / 60:.1f} min; {settings}", ""]
    lines += ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(_row(results, f)) + " |" for f in shown]
    lines += ["", "Samples:", ""]
    for figure in shown:
        per_server = results.samples.get(figure.key, {})
        text = "; ".join(f"{name} {_spread(per_server.get(name, []))}" for name in SERVERS)
        lines.append(f"- {figure.key} ({figure.unit}): {text}")
    if results.notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in results.notes]
    lines += ["", "Problems:", ""]
    lines += [f"- {p}" for p in results.problems] or ["- none"]
    return "\n".join(lines) + "\n"


HEADER = """\
# Benchmark results: rix against Orthanc

`make bench` (`bench/run.py`) measures rix and Orthanc (the Debian package) on the same
machine, the same synthetic data and the same clients, one server at a time, and appends
one dated entry here per run. Both servers fsync every stored file and commit their index
before answering (Orthanc: `SyncStorageArea`), rix on SQLite. Each server starts on an
empty store before every ingest measurement.

What is measured (the median of several runs of each):

- **C-STORE small**: 2,000 small uncompressed instances (CT/MR/CR 16-bit, US 8-bit,
  64x64 or 128x128; 1,000 studies, 400 patients) sent by DCMTK `storescu`, over 1
  association and over 4 concurrent associations (one `storescu` each). instances/s.
- **C-STORE CT**: one 300-slice 512x512 16-bit CT series (158 MB) over 1 association. MB/s
  (10^6 bytes of DICOM files per second).
- **C-FIND**: study-level queries on one open association, median latency in ms of up to
  30 repetitions: patient name wildcard (`SMI*`), a two-year study date range,
  `ModalitiesInStudy=MR`, and all studies (universal match, 1,001 studies). The client is
  `bench/scu.py`, a blocking single-thread SCU as cheap as DCMTK's findscu (pynetdicom as
  client added ~0.5 s to Orthanc's 0.2 s all-studies answer and hid the server's time).
- **C-MOVE**: the CT study (requested with `bench/scu.py`) to a DCMTK `storescp --ignore`.
  MB/s.
- **C-GET**: the CT study with DCMTK `getscu --ignore`. MB/s.
- **DICOMweb** (`run.py --only dicomweb` runs this part alone) on the same stored data,
  rix at `/dicomweb`, Orthanc's DICOMweb plugin at `/dicom-web`, each over one persistent
  HTTP/1.1 connection (`requests`, bodies read raw to the last byte and not decoded):
  - **QIDO-RS**: studies, median latency of up to 30 repetitions: `PatientName=SMI*`,
    `PatientName=smi&fuzzymatching=true`, the two-year `StudyDate` range,
    `ModalitiesInStudy=MR`, and a first page of 100 (`limit=100`), with a browser's
    `Accept-Encoding`. The match counts of both servers are compared first.
  - **WADO-RS series metadata** of the CT: median of 10, gzip as a browser asks for it,
    and uncompressed (`Accept-Encoding: identity`).
  - **WADO-RS series**: the whole CT as `multipart/related; type="application/dicom";
    transfer-syntax=*`; MB/s of its DICOM files, and the time to the first body byte.
  - **WADO-RS frame**: `frames/1` of 50 CT instances, each asked for once, as
    `multipart/related; type="application/octet-stream"; transfer-syntax=*`, with a
    browser's `Accept-Encoding` (Orthanc then gzips the frame; rix does not) and
    uncompressed. Median latency in ms.
  - **STOW-RS**: 500 of the small instances, 50 a request, into an empty store. inst/s.

Ratios are rix/Orthanc: for throughput (inst/s, MB/s) higher is better, for latency (ms)
lower is better. Targets:

| figure | target |
|---|---|
| C-STORE small instances, 4 associations | rix >= 1.5x Orthanc |
| C-STORE CT, MB/s | rix >= 1.5x Orthanc |
| every C-FIND median latency | rix <= 0.5x Orthanc |
| C-MOVE and C-GET, MB/s | rix >= 1.0x Orthanc |
| every QIDO-RS median latency | rix <= 0.3x Orthanc |
| WADO-RS series metadata (gzip) | rix <= 0.1x Orthanc |
| WADO-RS series, MB/s; its time to first byte | rix >= 1.0x Orthanc; <= 0.5x |
| WADO-RS frame median latency (both encodings) | rix <= 1.0x Orthanc |

"""


def append(entry: str) -> Path:
    """Append one run's entry, creating the file with its explanatory header first."""
    if not RESULTS.exists():
        RESULTS.write_text(HEADER)
    with RESULTS.open("a") as f:
        f.write("\n" + entry)
    return RESULTS
