"""`make bench`: rix against Orthanc on the same data, one server measured at a time.

Both servers run side by side for the whole run, each with its own storescp as C-MOVE
destination, but only one is ever under load: the machine has two cores and a loaded
neighbour would distort both. Rounds alternate which server goes first so slow drift
(page cache, thermal, other work on the machine) does not favour one of them.

The DIMSE part comes first; the DICOMweb part then queries and retrieves the data it left
stored (``--only dicomweb`` loads that data with storescu first, untimed) and ends with
STOW-RS into fresh servers.

    .venv/bin/python bench/run.py [--repeat 3] [--find-repeat 30] [--regenerate]
    .venv/bin/python bench/run.py --only dicomweb [--qido-repeat 30]

``--only access`` is separate from the comparison with Orthanc: what rix's access filter
costs its own C-FIND and QIDO-RS queries, measured in process (the SQL) and end to end
(over a DICOM association and HTTP, as a PACS or a viewer sees it; ``access.py``).

    .venv/bin/python bench/run.py --only access

``--only routing``: the time from the 300-slice CT's last instance arriving at rix to the
whole study stored at a ``storescp`` by a routing rule, beyond the stability delay.

    .venv/bin/python bench/run.py --only routing

``--only viewer``: the stock OHIF viewer in Chromium on the 300-slice CT, rix against
Orthanc (ServeFolders + DICOMweb), warm cache: time to the first drawn image and to all
slices loaded (``viewer.py``).

    .venv/bin/python bench/run.py --only viewer
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
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

import access
import dataset
import dicomweb
import dimse
import facts
import network
import processes
import report
import routing
import viewer
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

WEB_QUERIES = {
    "qido_name": {"PatientName": "SMI*"},
    "qido_fuzzy": {"PatientName": "smi", "fuzzymatching": "true"},
    "qido_date": {"StudyDate": "20200101-20211231"},
    "qido_modality": {"ModalitiesInStudy": "MR"},
    "qido_page": {"limit": "100"},
}
WEB_WARMUP = 2
QIDO_BUDGET = 30.0  # seconds per query, both servers together; at least 5 rounds always
METADATA_REPEAT = 10
FRAME_EVERY = 6  # frames/1 of every 6th CT slice: 50 instances, none asked for twice
SERIES_ROUNDS = 9
STOW_ROUNDS = 3
STOW_INSTANCES = 500
STOW_PER_REQUEST = 50
IDLE_TIMEOUT = 120.0

Endpoints = dict[str, dicomweb.Endpoint]  # by server name
Query = Mapping[str, str]


class Server(Protocol):
    name: str

    @property
    def peer(self) -> dimse.Peer: ...

    @property
    def dicomweb(self) -> str: ...

    @property
    def auth(self) -> dict[str, str]: ...

    @property
    def pid(self) -> int: ...

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
        self.failures: Counter[str] = Counter()  # failed HTTP requests, the same ones merged
        self.matches: dict[str, dict[str, int]] = {}  # QIDO-RS key -> server -> studies
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

    # --- DICOMweb --------------------------------------------------------------------

    def load(self) -> None:
        """For a DICOMweb-only run: what the DIMSE part leaves stored, sent untimed."""
        for server in self.servers:
            self.step(f"{server.name}: loading the small instances and the CT")
            server.start_empty()
            small = dimse.store(server.peer, self.data.small, 4, self.logs)
            self.check("loading small", server, small)
            self.check("loading CT", server, dimse.store(server.peer, self.data.ct, 1, self.logs))
            self.check_count("after loading all", server, len(self.data.small) + len(self.data.ct))
            self.done()

    def web(self, qido_repeats: int) -> None:
        """QIDO-RS, metadata, frames and the series on the stored data, then STOW-RS."""
        series = dicomweb.Series.from_files(self.data.ct)
        for server in self.servers:
            self.step(f"{server.name}: waiting for background work to end")
            if not processes.wait_idle(server.pid, timeout=IDLE_TIMEOUT):
                self.results.notes.append(
                    f"{server.name} was still busy {IDLE_TIMEOUT:.0f} s after the load; "
                    "DICOMweb measured anyway"
                )
        with ExitStack() as stack:
            endpoints = {
                s.name: stack.enter_context(dicomweb.connect(s.dicomweb, s.auth))
                for s in self.servers
            }
            self.qido(endpoints, qido_repeats)
            self.metadata(endpoints, series)
            self.frames(endpoints, series)
            self.series_retrieve(endpoints, series)
        self.stow()
        for text, times in self.failures.items():
            self.results.problems.append(text + (f" ({times} times)" if times > 1 else ""))

    def record(self, key: str, server: Server, reply: dicomweb.Reply, value: float) -> None:
        if reply.ok:
            self.results.add(key, server.name, value)
        else:
            self.failures[f"{server.name} {key}: {reply.problem()}"] += 1

    def qido(self, endpoints: Endpoints, repeats: int) -> None:
        """Study-level QIDO-RS, both servers in turn on each repetition (drift is shared)."""
        self.compare_matches(endpoints)
        for key, params in WEB_QUERIES.items():
            self.step(f"QIDO-RS {report.BY_KEY[key].label.removeprefix('QIDO-RS ')}")
            for server in self.servers:
                for _ in range(WEB_WARMUP):
                    dicomweb.get(endpoints[server.name], "/studies", dicomweb.DICOM_JSON, params)
            spent, round_ = 0.0, 0
            while round_ < repeats and (spent < QIDO_BUDGET or round_ < 5):
                for server in self.in_turn(round_):
                    reply = dicomweb.get(
                        endpoints[server.name], "/studies", dicomweb.DICOM_JSON, params
                    )
                    self.record(key, server, reply, reply.seconds * 1000)
                    spent += reply.seconds
                round_ += 1
            if round_ < repeats:
                self.results.notes.append(f"{key}: {round_} repetitions (time budget)")
            self.done()
        self.fuzzy_stand_in()

    def fuzzy_stand_in(self) -> None:
        """Where Orthanc ignores fuzzymatching, its ``SMI*`` answer holds the studies
        rix's fuzzy ``smi`` finds: the ratio to that is the like-for-like one."""
        found, results = self.matches, self.results
        rix_fuzzy = found.get("qido_fuzzy", {}).get("rix")
        if rix_fuzzy is None or rix_fuzzy != found.get("qido_name", {}).get("Orthanc"):
            return
        if found["qido_fuzzy"].get("Orthanc") == rix_fuzzy:
            return  # Orthanc matched the same studies itself: the table's ratio stands
        rix, orthanc = results.median("qido_fuzzy", "rix"), results.median("qido_name", "Orthanc")
        if rix is not None and orthanc:
            results.notes.append(
                f"qido_fuzzy: against Orthanc's PatientName=SMI* (the same {rix_fuzzy} studies, "
                f"median {orthanc:.1f} ms) rix's fuzzy median is {rix / orthanc:.2f}x"
            )

    def count(self, name: str, endpoint: dicomweb.Endpoint, path: str, params: Query) -> int:
        """Untimed: objects in a JSON answer; -1, and a problem, when there is none."""
        try:
            return dicomweb.count(endpoint, path, params)
        except dicomweb.RequestFailed as exc:
            self.results.problems.append(f"{name} GET {path[:40]} {dict(params)}: {exc}")
            return -1

    def compare_matches(self, endpoints: Endpoints) -> None:
        """Untimed: both servers must match the same number of studies for each query."""
        self.step("QIDO-RS: comparing the servers' matches")
        for key, params in WEB_QUERIES.items():
            found = {
                name: self.count(name, endpoint, "/studies", params)
                for name, endpoint in endpoints.items()
            }
            self.matches[key] = found
            text = ", ".join(f"{name} {n}" for name, n in found.items())
            if len(set(found.values())) == 1:
                self.results.notes.append(f"{key}: {text} matching studies")
            elif "fuzzymatching" in params and (ignoring := self.ignore_fuzzy(endpoints, params)):
                self.results.notes.append(
                    f"{key}: the servers disagree ({text} studies): {ignoring}; the latencies "
                    "compare answers of different sizes"
                )
            else:
                self.results.problems.append(f"{key}: the servers disagree on matches: {text}")
        self.done()

    def ignore_fuzzy(self, endpoints: Endpoints, params: Query) -> str:
        """Which servers answer the same with and without ``fuzzymatching=true``."""
        plain = {k: v for k, v in params.items() if k != "fuzzymatching"}
        ignoring = []
        for name, endpoint in endpoints.items():
            fuzzy = self.count(name, endpoint, "/studies", params)
            if fuzzy >= 0 and fuzzy == self.count(name, endpoint, "/studies", plain):
                ignoring.append(f"{name} ignores fuzzymatching ({fuzzy} with or without it)")
        return "; ".join(ignoring)

    def metadata(self, endpoints: Endpoints, series: dicomweb.Series) -> None:
        """Series metadata as a browser asks for it (gzip), then uncompressed."""
        path = series.path + "/metadata"
        for name, endpoint in endpoints.items():
            count = self.count(name, endpoint, path, {})
            if count != len(series.sop_uids):
                self.results.problems.append(
                    f"{name} series metadata: {count} instances, {len(series.sop_uids)} stored"
                )
        for key, encoding in (("metadata_gzip", None), ("metadata_plain", "identity")):
            self.step(report.BY_KEY[key].label)
            sizes: dict[str, str] = {}
            for server in self.servers:
                for _ in range(WEB_WARMUP):
                    dicomweb.get(endpoints[server.name], path, dicomweb.DICOM_JSON, None, encoding)
            for round_ in range(METADATA_REPEAT):
                for server in self.in_turn(round_):
                    reply = dicomweb.get(
                        endpoints[server.name], path, dicomweb.DICOM_JSON, None, encoding
                    )
                    self.record(key, server, reply, reply.seconds * 1000)
                    sizes[server.name] = f"{server.name} {reply.size:,} B {reply.encoding}"
            self.results.notes.append(f"{key}: answers of " + ", ".join(sizes.values()))
            self.done()

    def accepted(
        self, server: Server, endpoint: dicomweb.Endpoint, path: str, offers: tuple[str, str]
    ) -> str:
        """The Accept header to measure with: ``transfer-syntax=*`` unless the server
        refuses it, then the plain type (as stored, for both servers' uncompressed data)."""
        for accept in offers:
            reply = dicomweb.get(endpoint, path, accept)
            if reply.ok:
                if accept != offers[0]:
                    self.results.notes.append(
                        f"{server.name} refused Accept: {offers[0]}; measured with {accept}"
                    )
                return accept
            self.results.notes.append(
                f"{server.name} GET {path[-40:]} with {accept}: " + reply.problem()
            )
        return offers[0]

    def frames(self, endpoints: Endpoints, series: dicomweb.Series) -> None:
        """frames/1 of instances spread over the CT, each asked for once per server and
        encoding: with a browser's Accept-Encoding (Orthanc gzips frames), then without."""
        offers = (dicomweb.ALL_FRAMES, dicomweb.AS_STORED_FRAMES)
        probe = series.frame_path(series.sop_uids[1])
        accepts = {s.name: self.accepted(s, endpoints[s.name], probe, offers) for s in self.servers}
        frame_bytes = dataset.CT_MATRIX * dataset.CT_MATRIX * 2
        for key, encoding in (("frame", None), ("frame_plain", "identity")):
            self.step(report.BY_KEY[key].label)
            for sop in series.sop_uids[2 : 2 + WEB_WARMUP]:
                for server in self.servers:
                    path = series.frame_path(sop)
                    dicomweb.get(endpoints[server.name], path, accepts[server.name], None, encoding)
            sizes: dict[str, str] = {}
            for round_, sop in enumerate(series.sop_uids[::FRAME_EVERY]):
                for server in self.in_turn(round_):
                    path = series.frame_path(sop)
                    accept = accepts[server.name]
                    reply = dicomweb.get(endpoints[server.name], path, accept, None, encoding)
                    if reply.ok and (reply.parts != 1 or reply.decoded_size < frame_bytes):
                        text = f"{reply.parts} parts in {reply.decoded_size} bytes"
                        self.failures[f"{server.name} {key}: {text}"] += 1
                    else:
                        self.record(key, server, reply, reply.seconds * 1000)
                    sizes[server.name] = f"{server.name} {reply.size:,} B {reply.encoding}"
            self.results.notes.append(f"{key}: answers of " + ", ".join(sizes.values()))
            self.done()

    def series_retrieve(self, endpoints: Endpoints, series: dicomweb.Series) -> None:
        """The whole CT series as multipart DICOM; MB/s of the DICOM files, as C-MOVE."""
        self.step(report.BY_KEY["series_rate"].label)
        offers = (dicomweb.ALL_DICOM, dicomweb.AS_STORED_DICOM)
        single = series.path + f"/instances/{series.sop_uids[0]}"
        accepts = {
            s.name: self.accepted(s, endpoints[s.name], single, offers) for s in self.servers
        }
        for round_ in range(SERIES_ROUNDS):
            for server in self.in_turn(round_):
                _settle()
                reply = dicomweb.get(endpoints[server.name], series.path, accepts[server.name])
                if not reply.ok:
                    self.failures[f"{server.name} series: {reply.problem()}"] += 1
                elif reply.parts != len(series.sop_uids):
                    self.failures[f"{server.name} series: {reply.parts} parts"] += 1
                else:
                    rate = self.data.ct_bytes / MB / reply.seconds
                    self.results.add("series_rate", server.name, rate)
                    self.results.add("series_first_byte", server.name, reply.first_byte * 1000)
        self.done()

    def stow(self) -> None:
        """STOW-RS into an empty store, as the DIMSE ingest: the bodies are built first."""
        uploads = dicomweb.uploads(self.data.small[:STOW_INSTANCES], STOW_PER_REQUEST)
        for round_ in range(STOW_ROUNDS):
            for server in self.in_turn(round_):
                self.step(f"{server.name}: STOW-RS, round {round_ + 1}/{STOW_ROUNDS}")
                server.start_empty()
                _settle()
                with dicomweb.connect(server.dicomweb, server.auth) as endpoint:
                    answer = dicomweb.stow(endpoint, uploads)
                self.results.problems += [f"{server.name} STOW-RS: {p}" for p in answer.problems]
                self.check_count("STOW-RS", server, STOW_INSTANCES)
                if not answer.problems:
                    self.results.add("stow", server.name, STOW_INSTANCES / answer.seconds)
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
    parts = report.PARTS if args.only is None else (args.only,)
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
        progress.update(bench.task, total=_steps(args, parts))
        try:
            if "dimse" in parts:
                bench.ingest(args.repeat)
            else:
                bench.load()
            system, plugins = orthanc.system(), orthanc.plugins()
            if "dimse" in parts:
                bench.find(args.find_repeat)
                bench.retrieve(args.repeat, destinations)
            if "dicomweb" in parts:
                bench.web(args.qido_repeat)
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
    report.print_table(console, bench.results, parts)
    settings = []
    if "dimse" in parts:
        settings.append(
            f"{args.repeat} rounds of each ingest, C-MOVE and C-GET; "
            f"C-FIND up to {args.find_repeat} repetitions"
        )
    if "dicomweb" in parts:
        settings.append(
            f"QIDO-RS up to {args.qido_repeat} repetitions, series metadata {METADATA_REPEAT}, "
            f"{len(range(0, len(data.ct), FRAME_EVERY))} frames, {SERIES_ROUNDS} series "
            f"retrieves, {STOW_ROUNDS} rounds of STOW-RS ({STOW_INSTANCES} instances, "
            f"{STOW_PER_REQUEST} a request)"
        )
    entry = report.markdown(bench.results, machine, duration, "; ".join(settings), parts)
    path = report.append(entry)
    console.print(f"appended to {path}; run took {duration / 60:.1f} min")
    return 1 if bench.results.problems else 0


def _steps(args: argparse.Namespace, parts: Sequence[str]) -> int:
    steps = 0
    if "dimse" in parts:
        steps += args.repeat * 2 * 3 + 2 + len(QUERIES) * 2 + args.repeat * 2 * 2
    else:
        steps += 2  # loading both servers
    if "dicomweb" in parts:
        steps += 1 + len(WEB_QUERIES) + 2 + 2 + 1 + STOW_ROUNDS * 2
    return steps


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
    parser.add_argument("--qido-repeat", type=int, default=30, help="QIDO-RS repetitions")
    parser.add_argument(
        "--only",
        choices=(*report.PARTS, "access", "routing", "viewer"),
        help="run one part (DIMSE or DICOMweb), not both; or the access filter's cost; "
        "or routing (a stable study to its destination); or OHIF in Chromium",
    )
    parser.add_argument("--regenerate", action="store_true", help="rewrite the dataset")
    parser.add_argument(
        "--no-isolation", action="store_true", help="do not run in a private network namespace"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    in_process = args.only == "access"  # no listener; PostgreSQL is on the host's loopback
    if not args.no_isolation and not in_process and not network.is_isolated():
        code = network.reexec_isolated()
        if code is not None:
            return code
    # SIGTERM runs the finally blocks (servers stopped) instead of killing us outright
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    console = Console()
    if not console.is_terminal:
        console = Console(width=132)  # a log file: keep the table's rows on one line
    if in_process:
        return access.run(console)
    if args.only == "routing":
        return routing.run(console)
    if args.only == "viewer":
        return viewer.run(console)
    if not network.is_isolated():
        console.print("[yellow]not isolated: Orthanc and storescp listen on all interfaces")
    return measure(args, console, time.monotonic())


if __name__ == "__main__":
    sys.exit(main())
