"""`make bench`: rix against Orthanc on the same data, one server measured at a time.

Both servers run side by side for the whole run, each with its own storescp as C-MOVE
destination, but only one is ever under load: the machine has two cores and a loaded
neighbour would distort both. Rounds alternate which server goes first so slow drift
(page cache, thermal, other work on the machine) does not favour one of them.

    .venv/bin/python bench/run.py [--repeat 3] [--find-repeat 30] [--regenerate]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Protocol

from pydicom.dataset import Dataset
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

import dataset
import dimse
import facts
import network
import report
from destination import StoreSCP
from orthanc import OrthancServer
from rixserver import RixServer

QUERIES = {
    "find_name": {"PatientName": "SMI*"},
    "find_date": {"StudyDate": "20200101-20211231"},
    "find_modality": {"ModalitiesInStudy": "MR"},
    "find_all": {},
}
FIND_WARMUP = 3
FIND_BUDGET = 40.0  # seconds per query and server; at least 5 samples are always taken
MB = 1e6


class Server(Protocol):
    name: str

    @property
    def peer(self) -> dimse.Peer: ...

    def start_empty(self) -> None: ...

    def stop(self) -> None: ...


class Bench:
    """The run's state: data, servers, where logs go, what was measured so far."""

    def __init__(
        self, data: dataset.BenchData, servers: Sequence[Server], logs: Path, progress: Progress
    ) -> None:
        self.data = data
        self.servers = servers
        self.logs = logs
        self.progress = progress
        self.results = report.Results()
        self.task: TaskID = progress.add_task("measuring", total=None)

    def step(self, text: str) -> None:
        self.progress.update(self.task, description=text)

    def done(self) -> None:
        self.progress.advance(self.task)

    def in_turn(self, round_: int) -> Sequence[Server]:
        return self.servers if round_ % 2 == 0 else list(reversed(self.servers))

    def check(self, what: str, server: Server, outcome: dimse.Outcome) -> None:
        self.results.problems += [f"{server.name} {what}: {p}" for p in outcome.problems]

    def check_count(self, what: str, server: Server, expected: int) -> None:
        found = dimse.stored_instances(server.peer)
        if found != expected:
            self.results.problems.append(
                f"{server.name} {what}: C-FIND reports {found} instances, {expected} were sent"
            )

    # --- ingest ----------------------------------------------------------------------

    def ingest(self, repeats: int) -> None:
        """Each measurement on an empty store; the last one leaves the small set stored."""
        data = self.data
        plan = (
            ("store_small_1", "C-STORE small x1", data.small, 1),
            ("store_ct", "C-STORE CT", data.ct, 1),
            ("store_small_4", "C-STORE small x4", data.small, 4),
        )
        for round_ in range(repeats):
            for server in self.in_turn(round_):
                for key, text, files, associations in plan:
                    self.step(f"{server.name}: {text}, round {round_ + 1}/{repeats}")
                    server.start_empty()
                    _settle()
                    outcome = dimse.store(server.peer, files, associations, self.logs)
                    self.check(text, server, outcome)
                    self.check_count(text, server, len(files))
                    bytes_ = data.ct_bytes if files is data.ct else 0
                    rate = bytes_ / MB if bytes_ else len(files)
                    self.results.add(key, server.name, rate / outcome.seconds)
                    self.done()
        for server in self.servers:
            self.step(f"{server.name}: adding the CT for queries and retrieves")
            self.check("loading CT", server, dimse.store(server.peer, data.ct, 1, self.logs))
            self.check_count("after loading all", server, len(data.small) + len(data.ct))
            self.done()

    # --- query -----------------------------------------------------------------------

    def find(self, repeats: int) -> None:
        matches: dict[str, dict[str, int]] = {}
        for server in self.servers:
            with dimse.find_session(server.peer) as find:
                for key, matching in QUERIES.items():
                    self.step(f"{server.name}: {report.BY_KEY[key].label}")
                    query = dimse.study_query(**matching)
                    for _ in range(FIND_WARMUP):
                        find(query)
                    answers = _timed_finds(find, query, repeats)
                    for answer in answers:
                        self.results.add(key, server.name, answer.seconds * 1000)
                    bad = {a.status for a in answers if a.status != 0}
                    if bad:
                        self.results.problems.append(f"{server.name} {key}: statuses {bad}")
                    matches.setdefault(key, {})[server.name] = answers[-1].matches
                    if len(answers) < repeats:
                        self.results.notes.append(
                            f"{server.name} {key}: {len(answers)} repetitions (time budget)"
                        )
                    self.done()
        for key, per_server in matches.items():
            text = ", ".join(f"{name} {n}" for name, n in per_server.items())
            if len(set(per_server.values())) > 1:
                self.results.problems.append(f"{key}: the servers disagree on matches: {text}")
            else:
                self.results.notes.append(f"{key}: {text} matching studies")

    # --- retrieve --------------------------------------------------------------------

    def retrieve(self, repeats: int, destinations: dict[str, StoreSCP]) -> None:
        data, expected = self.data, len(self.data.ct)
        for round_ in range(repeats):
            for server in self.in_turn(round_):
                self.step(f"{server.name}: C-MOVE CT, round {round_ + 1}/{repeats}")
                dest = destinations[server.name].ae_title
                _settle()
                outcome = dimse.move(server.peer, data.ct_study_uid, dest, expected)
                self.check("C-MOVE", server, outcome)
                self.results.add("move_ct", server.name, data.ct_bytes / MB / outcome.seconds)
                self.done()
                self.step(f"{server.name}: C-GET CT, round {round_ + 1}/{repeats}")
                _settle()
                outcome = dimse.get(server.peer, data.ct_study_uid, expected, self.logs)
                self.check("C-GET", server, outcome)
                self.results.add("get_ct", server.name, data.ct_bytes / MB / outcome.seconds)
                self.done()


def _timed_finds(find: dimse.Finder, query: Dataset, repeats: int) -> list[dimse.FindAnswer]:
    answers: list[dimse.FindAnswer] = []
    spent = 0.0
    while len(answers) < repeats and (spent < FIND_BUDGET or len(answers) < 5):
        answer = find(query)
        answers.append(answer)
        spent += answer.seconds
    return answers


def _settle() -> None:
    """Flush dirty pages and let the last server's background work end before timing."""
    os.sync()
    time.sleep(0.5)


def _progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description:<58}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def measure(args: argparse.Namespace, console: Console, started: float) -> int:
    with _progress(console) as progress, ExitStack() as stack:
        data = dataset.load_or_generate(progress, regenerate=args.regenerate)
        warm = progress.add_task("reading the dataset into the page cache", total=None)
        dataset.warm(data)
        progress.update(warm, total=1, completed=1)
        tmp = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="run-", dir=dataset.WORK))
        )
        logs = dataset.WORK / "logs"
        shutil.rmtree(logs, ignore_errors=True)
        logs.mkdir()
        destinations = {
            name: StoreSCP(log=logs / f"storescp-{name}.log") for name in ("rix", "Orthanc")
        }
        for scp in destinations.values():
            stack.callback(scp.stop)
            scp.start()
        rix = RixServer(root=_folder(tmp / "rix"), move_destination=destinations["rix"].peer)
        orthanc = OrthancServer(
            root=_folder(tmp / "orthanc"), move_destination=destinations["Orthanc"].peer
        )
        stack.callback(rix.stop)
        stack.callback(orthanc.stop)
        bench = Bench(data, [rix, orthanc], logs, progress)
        steps = args.repeat * 2 * 3 + 2 + len(QUERIES) * 2 + args.repeat * 2 * 2
        progress.update(bench.task, total=steps)
        try:
            bench.ingest(args.repeat)
            system, plugins = orthanc.system(), orthanc.plugins()
            bench.find(args.find_repeat)
            bench.retrieve(args.repeat, destinations)
        finally:
            _keep_logs(tmp, logs)
    if "dicom-web" not in plugins:
        bench.results.problems.append(f"Orthanc DICOMweb plugin not loaded (plugins: {plugins})")
    duration = time.monotonic() - started
    machine = facts.gather(
        orthanc=str(system.get("Version", "?")),
        dicomweb_plugin="loaded" if "dicom-web" in plugins else "missing",
        isolated=network.is_isolated(),
    )
    report.print_table(console, bench.results)
    settings = (
        f"{args.repeat} rounds of each ingest, C-MOVE and C-GET; "
        f"C-FIND up to {args.find_repeat} repetitions"
    )
    path = report.append(report.markdown(bench.results, machine, duration, settings))
    console.print(f"appended to {path}; run took {duration / 60:.1f} min")
    return 1 if bench.results.problems else 0


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _keep_logs(tmp: Path, logs: Path) -> None:
    """Server logs outlive the temporary folder: bench/work/logs/ after every run."""
    for name in ("rix/rix-serve.log", "orthanc/orthanc.log"):
        source = tmp / name
        if source.exists():
            (logs / source.name).write_bytes(source.read_bytes())


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds of each ingest/retrieve")
    parser.add_argument("--find-repeat", type=int, default=30, help="C-FIND repetitions")
    parser.add_argument("--regenerate", action="store_true", help="rewrite the dataset")
    parser.add_argument(
        "--no-isolation", action="store_true", help="do not run in a private network namespace"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if not args.no_isolation and not network.is_isolated():
        code = network.reexec_isolated()
        if code is not None:
            return code
    # SIGTERM runs the finally blocks (servers stopped) instead of killing us outright
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    console = Console()
    if not console.is_terminal:
        console = Console(width=132)  # a log file: keep the table's rows on one line
    if not network.is_isolated():
        console.print("[yellow]not isolated: Orthanc and storescp listen on all interfaces")
    return measure(args, console, time.monotonic())


if __name__ == "__main__":
    sys.exit(main())
