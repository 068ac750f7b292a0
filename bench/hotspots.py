"""Where `rix serve` spends its time: py-spy samples during the two loads that matter most.

Run apart from `run.py` so sampling never slows a measured figure: it starts rix alone
on an empty store, samples it while 2,000 small instances arrive on 4 associations and
while the all-studies C-FIND repeats, and prints the top frames (self and inclusive,
idle threads excluded) and the share of each package. Raw stacks are kept in
``bench/work/profiles/`` (flamegraph-compatible collapsed format).

``--dicomweb`` samples the WADO-RS loads of ``run.py --only dicomweb`` instead, on a rix
holding the CT: the series metadata (gzip), ``frames/1`` of every slice (uncompressed)
and the whole series as multipart DICOM, each request as ``run.py`` makes it.

    .venv/bin/python bench/hotspots.py [--rate 100] [--top 15] [--gil] [--dicomweb]
    .venv/bin/pip install py-spy   # if missing
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

import dataset
import dicomweb
import dimse
from processes import cpu_seconds, wait_idle
from rixserver import RixServer

PROFILES = dataset.WORK / "profiles"
_LINE = re.compile(r":\d+\)$")


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise SystemExit("py-spy not found: .venv/bin/pip install py-spy")
    return found


@contextmanager
def sampled(pid: int, out: Path, rate: int, gil: bool) -> Iterator[None]:
    """py-spy record on ``pid`` for the duration of the block (SIGINT makes it write).

    ``--nonblocking`` so sampling barely slows rix; ``gil`` keeps only samples of the
    thread holding the GIL: the Python work that the GIL serialises across associations.
    """
    command = [py_spy(), "record", "--pid", str(pid), "--rate", str(rate), "--nonblocking"]
    command += ["--full-filenames", "--format", "raw", "--output", str(out)]
    if gil:
        command.append("--gil")
    log = out.with_suffix(".log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    time.sleep(1.0)  # attach before the load starts
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        log.close()


def stacks(raw: Path) -> Counter[tuple[str, ...]]:
    """Collapsed stacks (``a;b;c count``), frames without line numbers so lines merge."""
    counts: Counter[tuple[str, ...]] = Counter()
    for line in raw.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            counts[tuple(_short(_LINE.sub(")", f)) for f in frames.split(";"))] += int(count)
    return counts


def summarise(console: Console, title: str, raw: Path, top: int) -> None:
    counts = stacks(raw)
    total = sum(counts.values()) or 1
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    package: Counter[str] = Counter()
    for frames, n in counts.items():
        own[frames[-1]] += n
        package[_package(frames[-1])] += n
        for frame in set(frames):
            inclusive[frame] += n
    console.rule(f"{title}: {total}")
    for name, counter in (("self", own), ("inclusive", inclusive), ("package (self)", package)):
        table = Table(title=f"top {name}")
        table.add_column("%", justify="right")
        table.add_column("frame")
        for frame, n in counter.most_common(top):
            table.add_row(f"{100 * n / total:.1f}", frame)
        console.print(table)


_ROOTS = ("site-packages/", "/src/", "/lib/python3.11/")


def _short(frame: str) -> str:
    """``f (/x/site-packages/pydicom/tag.py)`` -> ``f (pydicom/tag.py)``; ``rix/`` for ours."""
    for root in _ROOTS:
        if root in frame:
            name, _, path = frame.partition(" (")
            return f"{name} ({path.split(root, 1)[1]}"
    return frame


def _package(frame: str) -> str:
    """``f (pydicom/tag.py)`` -> ``pydicom``; ``rix.dicom``, ``rix.ingest``; stdlib modules."""
    path = frame[frame.rfind("(") + 1 : -1]
    parts = path.split("/")
    if parts[0] == "rix" and len(parts) > 1:
        return "rix." + parts[1].removesuffix(".py")
    return parts[0].removesuffix(".py")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=100, help="samples per second")
    parser.add_argument("--top", type=int, default=15, help="frames per table")
    parser.add_argument("--queries", type=int, default=20, help="all-studies C-FINDs sampled")
    parser.add_argument("--gil", action="store_true", help="only samples holding the GIL")
    parser.add_argument("--dicomweb", action="store_true", help="sample WADO-RS loads instead")
    parser.add_argument("--requests", type=int, default=300, help="WADO-RS requests sampled")
    args = parser.parse_args()
    console = Console()
    PROFILES.mkdir(parents=True, exist_ok=True)
    with Progress(console=console) as progress:
        data = dataset.load_or_generate(progress)
    if args.dicomweb:
        return web_hotspots(args, console, data)
    suffix = "-gil" if args.gil else ""
    ingest = PROFILES / f"rix-ingest-4{suffix}.txt"
    find_all = PROFILES / f"rix-find-all{suffix}.txt"
    with tempfile.TemporaryDirectory(prefix="hotspots-", dir=dataset.WORK) as tmp:
        rix = RixServer(root=Path(tmp), move_destination=dimse.Peer(ae_title="DEST", port=9))
        try:
            rix.start_empty()
            cpu, wall = cpu_seconds(rix.pid), time.perf_counter()
            with sampled(rix.pid, ingest, args.rate, args.gil):
                outcome = dimse.store(rix.peer, data.small, 4, Path(tmp))
            console.print(
                f"ingest: {len(data.small) / outcome.seconds:.0f} inst/s while sampled; "
                + _busy(rix.pid, cpu, wall)
            )
            for problem in outcome.problems:
                console.print(f"[red]problem:[/red] {problem}")
            with dimse.find_session(rix.peer) as find:
                cpu, wall = cpu_seconds(rix.pid), time.perf_counter()
                with sampled(rix.pid, find_all, args.rate, args.gil):
                    seconds = sorted(find(dimse.study_query()).seconds for _ in range(args.queries))
                busy = _busy(rix.pid, cpu, wall)
            console.print(f"find all: median {seconds[len(seconds) // 2] * 1000:.0f} ms; {busy}")
        finally:
            rix.stop()
    what = "GIL-holding samples" if args.gil else "samples of active threads"
    summarise(console, f"rix, C-STORE small on 4 associations, {what}", ingest, args.top)
    summarise(console, f"rix, C-FIND all studies, {what}", find_all, args.top)
    console.print(f"raw stacks: {PROFILES}")
    return 0


def web_hotspots(args: argparse.Namespace, console: Console, data: dataset.BenchData) -> int:
    """rix holding the CT, metadata built; each WADO-RS load sampled on its own."""
    suffix = "-gil" if args.gil else ""
    series = dicomweb.Series.from_files(data.ct)
    frames = [series.frame_path(sop) for sop in series.sop_uids]
    frame_accept = dicomweb.ALL_FRAMES
    loads = {
        "metadata": ("WADO-RS series metadata, gzip", series.path + "/metadata",
                     dicomweb.DICOM_JSON, None, args.requests),
        "frames": ("WADO-RS frames/1, uncompressed", "", frame_accept, "identity",
                   args.requests),
        "series": ("WADO-RS whole series", series.path, dicomweb.ALL_DICOM, None,
                   max(args.requests // 30, 3)),
    }  # fmt: skip
    raws: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="hotspots-", dir=dataset.WORK) as tmp:
        rix = RixServer(root=Path(tmp), move_destination=dimse.Peer(ae_title="DEST", port=9))
        try:
            rix.start_empty()
            outcome = dimse.store(rix.peer, data.ct, 1, Path(tmp))
            for problem in outcome.problems:
                console.print(f"[red]problem:[/red] {problem}")
            wait_idle(rix.pid, timeout=120)  # the metadata builder has done the CT
            with dicomweb.connect(rix.dicomweb) as endpoint:
                for name, (title, path, accept, encoding, count) in loads.items():
                    paths = [path or frames[i % len(frames)] for i in range(count)]
                    for warm in paths[:3]:
                        dicomweb.get(endpoint, warm, accept, None, encoding)
                    raws[name] = PROFILES / f"rix-{name}{suffix}.txt"
                    cpu, wall = cpu_seconds(rix.pid), time.perf_counter()
                    with sampled(rix.pid, raws[name], args.rate, args.gil):
                        replies = [dicomweb.get(endpoint, p, accept, None, encoding) for p in paths]
                    busy = _busy(rix.pid, cpu, wall)
                    seconds = sorted(r.seconds for r in replies)
                    failed = {r.problem() for r in replies if not r.ok}
                    console.print(
                        f"{title}: {count} requests, median {seconds[count // 2] * 1000:.1f} ms; "
                        f"{busy}" + (f"; [red]failed:[/red] {failed}" if failed else "")
                    )
        finally:
            rix.stop()
    what = "GIL-holding samples" if args.gil else "samples of active threads"
    for name, (title, *_rest) in loads.items():
        summarise(console, f"rix, {title}, {what}", raws[name], args.top)
    console.print(f"raw stacks: {PROFILES}")
    return 0


def _busy(pid: int, cpu_before: float, wall_before: float) -> str:
    """How many cores rix kept busy since the given moment (includes py-spy's pauses)."""
    cores = (cpu_seconds(pid) - cpu_before) / (time.perf_counter() - wall_before)
    return f"rix process used {cores:.2f} cores"


if __name__ == "__main__":
    sys.exit(main())
