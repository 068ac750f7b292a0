"""``run.py --only routing``: how long after a study arrives it is at its destination.

The issue's figure: from the last instance of the 300-slice CT acknowledged by rix to the
whole study stored at a DCMTK ``storescp`` on loopback, less the stability delay (rix
waits ``stable_seconds`` after the last instance before the routing rules see a study).
Target: under 5 s.

Each round starts rix on an empty data folder (a study already held would not be new),
with one rule (CT to the destination), sends the CT with ``storescu`` on one association,
and polls the destination's folder until all 300 files are there. The job table then says
where the time went: waiting for stability, the rules, the delivery itself.
"""

from __future__ import annotations

import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

import dataset
import dimse
import facts
import report
from dimse import DCMTK_ENV, MAX_PDU, Peer
from network import LOOPBACK, free_port, wait_for_port
from processes import stop, tethered
from rixserver import RixServer

ROUNDS = 3
STABLE_SECONDS = 2.0
TARGET = 5.0  # seconds beyond the stability delay
DEST = "ROUTE_DEST"
RULE = f"""[[rule]]
name = "CT to the destination PACS"
[rule.when]
modality = "CT"
[rule.send]
ae = "{DEST}"
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Round:
    beyond: float  # seconds from the last acknowledgement to all stored, less stability
    store: float  # storescu: the CT into rix
    waited: float  # from the last acknowledgement until the rules ran (stability)
    deliver: float  # the send job, from claim to done


class Destination:
    """A storescp that keeps the files: the figure includes writing them, as a PACS would."""

    def __init__(self, folder: Path, log: Path) -> None:
        self.folder, self.log = folder, log
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Destination:
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        command = ["storescp", "-aet", DEST, "-pdu", str(MAX_PDU), "-od", str(self.folder)]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                tethered([*command, str(self.port)]),
                env=DCMTK_ENV,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port, timeout=10)
        return self

    def count(self) -> int:
        return sum(1 for _ in self.folder.iterdir())

    def stop(self) -> None:
        stop(self.process)
        self.process = None


def one_round(rix: RixServer, data: dataset.BenchData, work: Path) -> Round:
    destination = Destination(work / "dest", work / "storescp-route.log").start()
    try:
        rix.start_empty()
        rix.cli("ae", "add", DEST, "--host", LOOPBACK, "--port", str(destination.port))
        rules = work / "rules.toml"
        rules.write_text(RULE)
        rix.cli("rules", "load", str(rules))
        stored = dimse.store(rix.peer, data.ct, 1, work)
        if stored.problems:
            raise RuntimeError("; ".join(stored.problems))
        acknowledged = time.time()
        deadline = time.monotonic() + STABLE_SECONDS + 120
        while destination.count() < len(data.ct):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{destination.count()} of {len(data.ct)} arrived")
            time.sleep(0.01)
        arrived = time.time()
        jobs = _jobs(rix.data / "index.sqlite")
        while "send" not in jobs:  # the files are there before rix records the job done
            if time.monotonic() > deadline:
                raise TimeoutError("the delivery job was not recorded done")
            time.sleep(0.05)
            jobs = _jobs(rix.data / "index.sqlite")
    finally:
        destination.stop()
    stable, send = jobs["stable"], jobs["send"]
    return Round(
        beyond=arrived - acknowledged - STABLE_SECONDS,
        store=stored.seconds,
        waited=stable[0] - acknowledged,
        deliver=send[1] - send[0],
    )


def _jobs(index: Path) -> dict[str, tuple[float, float]]:
    """(started, finished) of each kind of job the round ran (one of each)."""
    with sqlite3.connect(index) as conn:
        rows = conn.execute(
            "SELECT kind, started_at, finished_at FROM jobs WHERE state = 'done'"
        ).fetchall()
    return {kind: (started, finished) for kind, started, finished in rows}


def run(console: Console) -> int:
    started = time.monotonic()
    with Progress(console=console) as progress:
        data = dataset.load_or_generate(progress)
        dataset.warm(data)
        task = progress.add_task("routing the 300-slice CT", total=ROUNDS)
        with tempfile.TemporaryDirectory(prefix="routing-", dir=dataset.WORK) as tmp:
            work = Path(tmp)
            unused = Peer(ae_title="UNUSED", port=free_port())
            rix = RixServer(
                root=work,
                move_destination=unused,
                extra_env={"RIX_STABLE_SECONDS": str(STABLE_SECONDS)},
            )
            rounds = []
            try:
                for _ in range(ROUNDS):
                    rounds.append(one_round(rix, data, work))
                    progress.advance(task)
            finally:
                rix.stop()
    table = _table(rounds)
    console.print(table)
    beyond = statistics.median(r.beyond for r in rounds)
    met = "yes" if beyond < TARGET else "NO"
    entry = _markdown(rounds, data, time.monotonic() - started, beyond, met)
    console.print(f"appended to {report.append(entry)}")
    return 0


COLUMNS = ("round", "CT into rix s", "stability waited s", "delivery job s", "beyond stability s")


def _cells(n: int, r: Round) -> list[str]:
    return [str(n), f"{r.store:.2f}", f"{r.waited:.2f}", f"{r.deliver:.2f}", f"{r.beyond:.2f}"]


def _table(rounds: list[Round]) -> Table:
    table = Table(*COLUMNS, title="300-slice CT: last instance in rix -> stored at storescp")
    for n, r in enumerate(rounds, 1):
        table.add_row(*_cells(n, r))
    return table


def _markdown(
    rounds: list[Round], data: dataset.BenchData, duration: float, beyond: float, met: str
) -> str:
    machine = facts.gather(orthanc="-", dicomweb_plugin="-", isolated=False)
    lines = [
        f"## Routing {time.strftime('%Y-%m-%d %H:%M')}: a stable study to its destination",
        "",
        *(f"- {line}" for line in machine.lines()[:3]),
        f"- the 300-slice CT ({data.ct_bytes / 1e6:.0f} MB, {len(data.ct)} instances) stored "
        f"by storescu into `rix serve` (SQLite + files), one rule sending CT to a storescp on "
        f"loopback that writes the files; stable_seconds = {STABLE_SECONDS:g}; "
        f"{len(rounds)} rounds, each on an empty data folder; run took {duration:.0f} s",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
        *("| " + " | ".join(_cells(n, r)) + " |" for n, r in enumerate(rounds, 1)),
        "",
        f"Median beyond the stability delay: **{beyond:.2f} s** (target < {TARGET:g} s: {met}).",
        "",
    ]
    return "\n".join(lines)
