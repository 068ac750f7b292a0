"""The figures, their targets, the console table and the dated entry in RESULTS.md.

Each figure is the median of its samples (the median resists one disturbed run on a
shared two-core machine better than the mean). The ratio is always rix/Orthanc: for
throughput higher is better, for latency lower is better, and each target says which.
"""

from __future__ import annotations

import statistics
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
)  # fmt: skip
BY_KEY = {f.key: f for f in FIGURES}


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


def print_table(console: Console, results: Results) -> None:
    table = Table(title="rix vs Orthanc (medians)")
    for header in HEADERS:
        table.add_column(header, justify="left" if header == "measurement" else "right")
    for figure in FIGURES:
        table.add_row(*_row(results, figure))
    console.print(table)
    for line in results.notes:
        console.print(f"note: {line}")
    for line in results.problems:
        console.print(f"[red]problem:[/red] {line}")


def markdown(results: Results, facts: Facts, duration: float, settings: str) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"## {when}", ""]
    lines += [f"- {line}" for line in facts.lines()]
    lines += [f"- run: {duration / 60:.1f} min; {settings}", ""]
    lines += ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(_row(results, f)) + " |" for f in FIGURES]
    lines += ["", "Samples:", ""]
    for figure in FIGURES:
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

Ratios are rix/Orthanc: for throughput (inst/s, MB/s) higher is better, for latency (ms)
lower is better. Targets:

| figure | target |
|---|---|
| C-STORE small instances, 4 associations | rix >= 1.5x Orthanc |
| C-STORE CT, MB/s | rix >= 1.5x Orthanc |
| every C-FIND median latency | rix <= 0.5x Orthanc |
| C-MOVE and C-GET, MB/s | rix >= 1.0x Orthanc |

"""


def append(entry: str) -> Path:
    """Append one run's entry, creating the file with its explanatory header first."""
    if not RESULTS.exists():
        RESULTS.write_text(HEADER)
    with RESULTS.open("a") as f:
        f.write("\n" + entry)
    return RESULTS
