"""``run.py --only viewer``: the stock OHIF viewer in Chromium, on rix and on Orthanc.

The same prepared OHIF dist (``make viewer``: ``build/ohif``) is opened in Debian's Chromium
(Playwright, the flags of ``tests/peers/browser.py``) on the 300-slice 512x512 16-bit CT of
``dataset.py`` (synthetic, uncompressed), stored by ``storescu`` from the identical files
into both servers:

- **rix**: ``rix serve`` with its viewer at ``/viewer/`` reading its own ``/dicomweb``, the
  user signed in through ``/login`` (the session cookie authenticates every request).
- **Orthanc** (Debian package) with its DICOMweb plugin, the same dist served on the same
  origin by its ServeFolders plugin (``/viewer``), with an ``app-config.js`` that differs
  from rix's only in the root (``/dicom-web``). ServeFolders has no route fallback, so the
  folder holds ``viewer``, a link to ``index.html`` that an extension-less MIME entry serves
  as HTML: OHIF's ``/viewer/viewer?StudyInstanceUIDs=...`` route then loads as on rix.
  Orthanc at its best on loopback: ``TCP_NODELAY=1``, ``StorageCompression`` false,
  ``HttpCompressionEnabled`` false (it gzips each frame otherwise, ~50 ms a frame in
  ``--only dicomweb``), ``AllowCache`` true; its own temporary storage, loopback only.

Each server gets its own persistent Chromium profile (a disk cache, as a user's browser
has; an incognito context's in-memory cache is too small to hold the bundles and frames).
Its cache is warmed by one untimed load, then ``ROUNDS`` rounds alternate which server goes
first. A round opens a copy of the CT the profile has not seen ("new study": bundles warm,
frames from the server), then opens it again at once ("reopened": frames come from the
browser's cache wherever the server allowed it). The copies are the CT's files with new
study, series and instance UIDs, nothing else changed.

The clock starts at the click on the study's link (``a.open-viewer``): on rix's portal
timeline page when ``START`` says so, else on a minimal same-origin page holding only that
link (both servers). It stops at the first viewport canvas with lit pixels (the test
helper's check, polled in the page every 50 ms) and at the end of the response of the
300th distinct ``/frames/`` request (Resource Timing). Medians of the rounds.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

from playwright.sync_api import BrowserContext, Page, Playwright, sync_playwright
from playwright.sync_api import Error as PlaywrightError
from pydicom import dcmread
from pydicom.uid import generate_uid
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

import dataset
import dimse
import facts
import network
import processes
import report
from dimse import Peer
from network import LOOPBACK, free_port
from orthanc import PLUGINS, OrthancServer
from rix.web import viewer as rix_viewer
from rixserver import RixServer

ROOT = Path(__file__).resolve().parents[1]
VIEWER = ROOT / "build" / "ohif"  # `make viewer`
ROUNDS = 5
LOAD_TIMEOUT = 60.0  # seconds for one load to draw and fetch every slice
TARGET_FIRST_RATIO = 0.6  # rix's first image <= 0.6x Orthanc's
TARGET_FIRST_S = 1.0
TARGET_ALL_S = 4.0

# Where the clock starts on rix: "portal" clicks a.open-viewer on the portal's timeline
# page (PORTAL_TIMELINE), "link" a minimal page holding only that link (as on Orthanc),
# "auto" the portal when that page answers with the link, else the minimal page.
START = "portal"
# the timeline of the CT's patient record: issuer/ID (BENCH's issuer when the file has none)
PORTAL_TIMELINE = "/timeline?patient={patient_id}"
VIEWER_ROUTE = "/viewer/viewer?StudyInstanceUIDs={study}"
LINK_PAGE = '<!doctype html><title>start</title><a class="open-viewer" href="{href}">open</a>'

# Which rix runs: "HEAD", a snapshot of the committed src/ (others edit src/ while this
# runs; a half-made change must not be measured), or "" for the working tree.
RIX_SOURCE = "HEAD"

USERNAME = "viewer.bench"
PASSWORD = "bench viewer password, loopback only"
SERVE_FOLDERS = PLUGINS / "libServeFolders.so"
VIEWPORT = {"width": 1280, "height": 800}


def _load(path: Path) -> ModuleType:
    """A module of the test tree by path: the bench runs without tests/ on sys.path."""
    spec = importlib.util.spec_from_file_location("rix_test_browser", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


browser = _load(ROOT / "tests" / "peers" / "browser.py")  # FLAGS, CHROMIUM, LIT_PIXELS

# Runs in every document of the profile; only the viewer's route watches. The click time
# (CLICK_RECORDER) crosses the navigation in sessionStorage (same origin); epoch ms.
PROBE = r"""(() => {
  const now = () => performance.timeOrigin + performance.now();
  if (!location.pathname.startsWith('/viewer/viewer')) return;
  const lit = %s;
  const bench = { clickedAt: Number(sessionStorage.getItem('benchClickedAt') || 0),
                  firstImageAt: 0, frames: new Map() };
  window.__bench = bench;
  const timer = setInterval(() => {
    if (lit() >= 1000) { bench.firstImageAt = now(); clearInterval(timer); }
  }, 50);
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (!e.name.includes('/frames/')) continue;
      bench.frames.set(e.name, { end: performance.timeOrigin + e.responseEnd,
        queued: e.requestStart - e.startTime, ttfb: e.responseStart - e.requestStart,
        body: e.responseEnd - e.responseStart, transfer: e.transferSize,
        size: e.encodedBodySize });
    }
  }).observe({ type: 'resource', buffered: true });
  performance.setResourceTimingBufferSize(2000);
  const ended = (test, pick) => {
    const ends = performance.getEntriesByType('resource').filter((e) => test(e.name))
      .map((e) => performance.timeOrigin + e[pick]);
    return ends.length ? Math.min(...ends) : 0;
  };
  bench.summary = () => ({ clickedAt: bench.clickedAt, firstImageAt: bench.firstImageAt,
    frames: [...bench.frames.values()],
    milestones: {
      'viewer page requested': performance.timeOrigin,
      'app-config.js loaded': ended((n) => n.includes('/app-config.js'), 'responseEnd'),
      'first QIDO-RS sent': ended((n) => /\/(regional\/)?studies\?/.test(n), 'startTime'),
      'series metadata loaded': ended((n) => n.endsWith('/metadata'), 'responseEnd'),
      'first frame sent': ended((n) => n.includes('/frames/'), 'startTime'),
      'first frame loaded': ended((n) => n.includes('/frames/'), 'responseEnd'),
      'first image drawn': bench.firstImageAt,
    } });
})();"""

# Added to the page holding the link once it is there (document.open, as in set_content,
# drops every listener added before).
CLICK_RECORDER = """(selector) => document.querySelector(selector).addEventListener('click', () =>
  sessionStorage.setItem('benchClickedAt', String(performance.timeOrigin + performance.now())))"""

# What the page fetched, by kind: static files of the dist, DICOMweb JSON, frames.
STATIC_BYTES = """() => performance.getEntriesByType('resource')
  .filter((e) => e.name.includes('/viewer/'))
  .reduce((sum, e) => sum + e.transferSize, 0)"""


# --- the servers ------------------------------------------------------------------------


@dataclass(kw_only=True)
class ViewerOrthanc(OrthancServer):
    """``OrthancServer`` at its best on loopback, serving the OHIF dist in ``viewer_dir``."""

    viewer_dir: Path = Path()

    def config(self, storage: Path) -> dict[str, Any]:
        config = super().config(storage)
        config["HttpCompressionEnabled"] = False
        config["Plugins"] = [*config["Plugins"], str(SERVE_FOLDERS)]
        config["ServeFolders"] = {
            "AllowCache": True,
            "GenerateETag": True,
            "Extensions": {".": "text/html"},  # the extension-less route file `viewer`
            "Folders": {"/viewer": str(self.viewer_dir)},
        }
        return config

    @property
    def origin(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"


def orthanc_viewer_folder(folder: Path) -> Path:
    """The prepared dist as ServeFolders serves it: links to its files (not the ``.gz``
    twins, which ServeFolders cannot send as gzip), ``app-config.js`` reading Orthanc's
    DICOMweb, and ``viewer``, OHIF's route, as ``index.html``. ServeFolders takes a
    file's MIME type from the last dot in its *full* path, hence no dot in ``folder``."""
    if "." in str(folder):
        raise ValueError(f"ServeFolders would misread MIME types under {folder}")
    dist = VIEWER
    if rix_viewer.prepared_version(dist) is None:
        raise RuntimeError(f"no prepared OHIF dist in {dist}: run `make viewer`")
    folder.mkdir(parents=True)
    for path in dist.iterdir():
        if not path.name.endswith(".gz") and not path.name.startswith("."):
            (folder / path.name).symlink_to(path)
    (folder / "viewer").symlink_to(dist / "index.html")
    # Orthanc's DICOMweb root serves QIDO and WADO alike (rix's viewer asks QIDO of its
    # /dicomweb/regional mount, which Orthanc has no equivalent of)
    config = (
        rix_viewer.APP_CONFIG.replace("/dicomweb/regional'", "/dicom-web'")
        .replace("/dicomweb'", "/dicom-web'")
        .replace("'rix'", "'orthanc'")
    )
    (folder / "app-config.js").write_text(config)
    return folder


def rix_source(folder: Path, measured: Measured) -> dict[str, str]:
    """Environment running rix from ``RIX_SOURCE``: ``PYTHONPATH`` comes before the
    editable install's path; the viewer stays the prepared dist of this tree."""
    env = {"RIX_VIEWER_DIR": str(VIEWER)}
    if not RIX_SOURCE:
        measured.notes.append("rix ran from the working tree")
        return env
    folder.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", RIX_SOURCE, "src"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    commit = _commit()
    measured.notes.append(
        f"rix ran from a snapshot of {RIX_SOURCE} ({commit}), not the working tree"
    )
    return {**env, "PYTHONPATH": str(folder / "src")}


def _commit() -> str:
    return facts.rix_commit().split()[0] if RIX_SOURCE == "HEAD" else RIX_SOURCE


def ct_copies(data: dataset.BenchData, folder: Path, count: int) -> list[tuple[str, list[Path]]]:
    """``count`` copies of the CT, each with new study, series and SOP instance UIDs."""
    copies = []
    for number in range(count):
        study, series = generate_uid(), generate_uid()
        out = folder / f"copy{number}"
        out.mkdir(parents=True)
        paths = []
        for index, path in enumerate(data.ct):
            ds = dcmread(path)
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.AccessionNumber = f"VIEW{number:04d}"
            target = out / f"{index:04d}.dcm"
            ds.save_as(target, enforce_file_format=True)
            paths.append(target)
        copies.append((str(study), paths))
    return copies


# --- one load in the browser ------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Load:
    first_image: float  # s from the click
    all_slices: float  # s from the click to the end of the last frame's response
    frames: int
    frames_cached: int  # answered from the browser's cache (no bytes transferred)
    frame_ttfb_ms: float  # median request sent -> first byte, frames from the network
    frame_body_ms: float  # median first -> last byte
    frame_queued_ms: float  # median waiting for a connection
    static_mb: float  # viewer files transferred (a warm cache transfers ~0)
    requests: dict[str, int]  # by kind
    milestones: dict[str, float]  # s from the click
    server_cpu: float  # s of the server process's CPU during the load
    start: str  # "portal" or "link"


@dataclass(kw_only=True)
class Side:
    """One server as the viewer sees it: origin, profile, how its loads start."""

    name: str
    origin: str
    context: BrowserContext
    pid: int
    portal: bool = False
    requests: Counter[str] = field(default_factory=Counter)

    def kind(self, url: str) -> str:
        path = url.removeprefix(self.origin)
        if "/frames/" in path:
            return "frames"
        if path.endswith("/metadata"):
            return "metadata"
        if path.startswith(("/dicomweb/", "/dicom-web/")):
            return "qido"
        if path.startswith("/viewer/"):
            return "viewer files"
        return "other"


def open_study(side: Side, study: str, patient_id: str, expected: int) -> Load:
    page = side.context.new_page()
    kinds: Counter[str] = Counter()
    page.on("requestfinished", lambda request: kinds.update([side.kind(request.url)]))
    watch = browser.Watch().attach(page)
    try:
        start = _click_link(page, side, study, patient_id)
        cpu = processes.cpu_seconds(side.pid)
        summary = _wait_loaded(page, expected)
        server_cpu = processes.cpu_seconds(side.pid) - cpu
        static = float(page.evaluate(STATIC_BYTES)) / 1e6
    except (TimeoutError, RuntimeError, PlaywrightError) as exc:
        shot = _folder(dataset.WORK / "logs") / f"viewer-{side.name}-failed.png"
        page.screenshot(path=str(shot))
        errors = (watch.errors + watch.failed)[:3]
        raise RuntimeError(f"{exc}"[:300] + f"; page errors {errors}; screenshot {shot}") from exc
    finally:
        page.close()
    clicked = summary["clickedAt"]
    frames = summary["frames"]
    fetched = [f for f in frames if f["transfer"] > 0]
    return Load(
        first_image=(summary["firstImageAt"] - clicked) / 1000,
        all_slices=(max(f["end"] for f in frames) - clicked) / 1000,
        frames=len(frames),
        frames_cached=len(frames) - len(fetched),
        frame_ttfb_ms=_median([f["ttfb"] for f in fetched]),
        frame_body_ms=_median([f["body"] for f in fetched]),
        frame_queued_ms=_median([f["queued"] for f in fetched]),
        static_mb=static,
        requests=dict(kinds),
        milestones={k: (v - clicked) / 1000 for k, v in summary["milestones"].items() if v},
        server_cpu=server_cpu,
        start=start,
    )


def _click_link(page: Page, side: Side, study: str, patient_id: str) -> str:
    """Open the page holding the study's link, then click it; returns which page."""
    href = VIEWER_ROUTE.format(study=study)
    if side.portal:
        page.goto(side.origin + PORTAL_TIMELINE.format(patient_id=quote(patient_id)))
        link, start = f'a.open-viewer[href*="{study}"]', "portal"
    else:
        page.goto(side.origin + ("/healthz" if side.name == "rix" else "/system"))
        page.set_content(LINK_PAGE.format(href=href))
        link, start = "a.open-viewer", "link"
    page.evaluate("sessionStorage.removeItem('benchClickedAt')")
    page.evaluate(CLICK_RECORDER, link)
    page.click(link)
    return start


def _wait_loaded(page: Page, expected: int) -> dict[str, Any]:
    deadline = time.monotonic() + LOAD_TIMEOUT
    summary: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            summary = page.evaluate("() => window.__bench ? window.__bench.summary() : null") or {}
        except PlaywrightError:  # the click's navigation replaced the page meanwhile
            summary = {}
        done = len(summary.get("frames", [])) >= expected
        if done and summary.get("firstImageAt"):
            if not summary.get("clickedAt"):
                raise RuntimeError("the click on the study's link was not recorded")
            return summary
        page.wait_for_timeout(100)
    got = len(summary.get("frames", []))
    raise TimeoutError(f"after {LOAD_TIMEOUT:.0f} s: {got}/{expected} frames, {summary=}"[:400])


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@contextmanager
def profile(playwright: Playwright, folder: Path) -> Iterator[BrowserContext]:
    """A persistent Chromium profile: its HTTP cache is on disk, as a user's is."""
    context = playwright.chromium.launch_persistent_context(
        str(folder),
        executable_path=str(browser.CHROMIUM),
        headless=True,
        args=browser.FLAGS,
        viewport=VIEWPORT,
    )
    context.add_init_script(PROBE % browser.LIT_PIXELS)
    try:
        yield context
    finally:
        context.close()


def portal_answers(side: Side, study: str, patient_id: str) -> bool:
    """Whether rix's portal timeline page is there and links the study to the viewer."""
    url = side.origin + PORTAL_TIMELINE.format(patient_id=quote(patient_id))
    answer = side.context.request.get(url, max_redirects=0)
    return answer.ok and "open-viewer" in answer.text() and study in answer.text()


# --- the run ----------------------------------------------------------------------------


@dataclass(kw_only=True)
class Measured:
    loads: dict[tuple[str, str], list[Load]] = field(default_factory=dict)  # (server, case)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add(self, server: str, case: str, load: Load) -> None:
        self.loads.setdefault((server, case), []).append(load)

    def median(self, server: str, case: str, attribute: str) -> float:
        return _median([getattr(x, attribute) for x in self.loads.get((server, case), [])])


CASES = ("new study", "reopened")


def run(console: Console) -> int:
    started = time.monotonic()
    measured = Measured()
    load_avg = os.getloadavg()[0]
    with Progress(console=console) as progress:
        data = dataset.load_or_generate(progress)
        dataset.warm(data)
    with (
        Progress(console=console) as progress,
        tempfile.TemporaryDirectory(prefix="viewer-", dir=dataset.WORK) as tmp,
    ):
        work = Path(tmp)
        task = progress.add_task("copying the CT (new UIDs)", total=None)
        copies = ct_copies(data, work / "ct", ROUNDS + 1)
        progress.update(task, total=1, completed=1)
        unused = Peer(ae_title="UNUSED", port=free_port())
        rix = RixServer(
            root=_folder(work / "rix"),
            move_destination=unused,
            extra_env=rix_source(work / "src", measured),
        )
        orthanc = ViewerOrthanc(
            root=_folder(work / "orthanc"),
            move_destination=unused,
            viewer_dir=orthanc_viewer_folder(work / "ohif"),
        )
        try:
            _start_and_load(rix, orthanc, copies, work, progress)
            system = orthanc.system()
            _measure(rix, orthanc, copies, data, work, progress, measured)
        finally:
            rix.stop()
            orthanc.stop()
            for name in ("rix/rix-serve.log", "orthanc/orthanc.log"):
                if (work / name).exists():
                    logs = _folder(dataset.WORK / "logs")
                    shutil.copy(work / name, logs / f"viewer-{Path(name).name}")
    duration = time.monotonic() - started
    load_after = os.getloadavg()[0]
    measured.notes.append(
        f"load average (1 min) {load_avg:.1f} before, {load_after:.1f} after, on "
        f"{os.cpu_count()} cores"
        + (": the machine was busy" if max(load_avg, load_after) > 0.7 else "")
    )
    console.print(_table(measured))
    for line in ["rounds (first image / all slices, s):", *_rounds(measured), *measured.problems]:
        console.print(line)
    entry = _markdown(measured, data, system, duration)
    console.print(f"appended to {report.append(entry)}")
    return 1 if measured.problems else 0


def _start_and_load(
    rix: RixServer,
    orthanc: ViewerOrthanc,
    copies: list[tuple[str, list[Path]]],
    work: Path,
    progress: Progress,
) -> None:
    """Both servers on empty storage, every copy of the CT stored into each, untimed."""
    rix.start_empty()
    rix.cli(
        "user",
        "add",
        USERNAME,
        "--roles",
        "radiologist",
        "--trust",
        "BENCH",
        "--password",
        PASSWORD,
    )
    orthanc.start_empty()
    task = progress.add_task("storing the CT copies into both", total=len(copies) * 2)
    for _, files in copies:
        for peer in (rix.peer, orthanc.peer):
            stored = dimse.store(peer, files, 1, work)
            if stored.problems:
                raise RuntimeError(f"storing into {peer.ae_title}: " + "; ".join(stored.problems))
            progress.advance(task)
    for pid in (rix.pid, orthanc.pid):  # rix builds metadata after ingest
        processes.wait_idle(pid, timeout=180)


def _measure(
    rix: RixServer,
    orthanc: ViewerOrthanc,
    copies: list[tuple[str, list[Path]]],
    data: dataset.BenchData,
    work: Path,
    progress: Progress,
    measured: Measured,
) -> None:
    header = dcmread(data.ct[0], stop_before_pixels=True)
    patient_id = f"{header.get('IssuerOfPatientID', '') or 'BENCH'}/{header.PatientID}"
    expected = len(data.ct)
    with (
        sync_playwright() as playwright,
        profile(playwright, work / "profile-rix") as rix_context,
        profile(playwright, work / "profile-orthanc") as orthanc_context,
    ):
        rix_origin = f"http://{LOOPBACK}:{rix.http_port}"
        signed = rix_context.request.post(
            rix_origin + "/login",
            form={"username": USERNAME, "password": PASSWORD, "next": "/"},
            max_redirects=0,
        )
        if signed.status != 303:
            raise RuntimeError(f"sign-in to rix failed: {signed.status} {signed.text()[:200]}")
        sides = [
            Side(name="rix", origin=rix_origin, context=rix_context, pid=rix.pid),
            Side(name="Orthanc", origin=orthanc.origin, context=orthanc_context, pid=orthanc.pid),
        ]
        warm_study = copies[0][0]
        sides[0].portal = START == "portal" or (
            START == "auto" and portal_answers(sides[0], warm_study, patient_id)
        )
        task = progress.add_task("OHIF loads", total=2 + ROUNDS * 4)
        for side in sides:  # the warm-up: bundles, decoders and wasm into the cache
            try:
                open_study(side, warm_study, patient_id, expected)
            except RuntimeError as exc:
                measured.problems.append(f"{side.name} warm-up: {exc}")
            progress.advance(task)
        for round_ in range(ROUNDS):
            study = copies[round_ + 1][0]
            order = sides if round_ % 2 == 0 else sides[::-1]
            for side in order:
                for case in CASES:
                    try:
                        measured.add(side.name, case, open_study(side, study, patient_id, expected))
                    except RuntimeError as exc:
                        measured.problems.append(f"{side.name} {case} round {round_ + 1}: {exc}")
                    progress.advance(task)
    start = "the portal's timeline page" if sides[0].portal else "a minimal same-origin page"
    measured.notes.append(f"rix's loads start at a click on a.open-viewer in {start}")


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- reporting --------------------------------------------------------------------------

COLUMNS = (
    "case",
    "measurement",
    "rix",
    "Orthanc",
    "rix/Orthanc",
    "target",
    "met",
)


def _rows(measured: Measured) -> list[list[str]]:
    rows = []
    for case in CASES:
        for attribute, label in (
            ("first_image", "first image, s"),
            ("all_slices", "all 300 slices, s"),
        ):
            ours = measured.median("rix", case, attribute)
            theirs = measured.median("Orthanc", case, attribute)
            ratio = ours / theirs if theirs else float("nan")
            if attribute == "first_image":
                target = f"<= {TARGET_FIRST_RATIO}x and < {TARGET_FIRST_S:g} s"
                met = ratio <= TARGET_FIRST_RATIO and ours < TARGET_FIRST_S
            else:
                target = f"< {TARGET_ALL_S:g} s"
                met = ours < TARGET_ALL_S
            rows.append(
                [
                    case,
                    label,
                    f"{ours:.2f}",
                    f"{theirs:.2f}",
                    f"{ratio:.2f}",
                    target,
                    "yes" if met else "NO",
                ]
            )
    return rows


def _detail_rows(measured: Measured) -> list[list[str]]:
    """Where the time went, per server and case (medians over the rounds)."""
    rows = []
    for case in CASES:
        for server in ("rix", "Orthanc"):
            loads = measured.loads.get((server, case), [])
            if not loads:
                continue
            kinds = Counter[str]()
            for load in loads:
                kinds.update(load.requests)
            per_load = ", ".join(f"{k} {v / len(loads):.0f}" for k, v in sorted(kinds.items()))
            rows.append(
                [
                    case,
                    server,
                    f"{measured.median(server, case, 'frames'):.0f}",
                    f"{measured.median(server, case, 'frames_cached'):.0f}",
                    f"{measured.median(server, case, 'frame_queued_ms'):.1f}",
                    f"{measured.median(server, case, 'frame_ttfb_ms'):.1f}",
                    f"{measured.median(server, case, 'frame_body_ms'):.1f}",
                    f"{measured.median(server, case, 'static_mb'):.2f}",
                    f"{measured.median(server, case, 'server_cpu'):.2f}",
                    per_load,
                ]
            )
    return rows


DETAIL_COLUMNS = (
    "case",
    "server",
    "frames",
    "from cache",
    "frame queued ms",
    "frame TTFB ms",
    "frame body ms",
    "viewer files MB",
    "server CPU s",
    "requests a load",
)


MILESTONES = (
    "viewer page requested",
    "app-config.js loaded",
    "first QIDO-RS sent",
    "series metadata loaded",
    "first frame sent",
    "first frame loaded",
    "first image drawn",
)


def _milestone_rows(measured: Measured) -> list[list[str]]:
    rows = []
    for (server, case), loads in sorted(measured.loads.items(), key=lambda kv: kv[0][::-1]):
        cells = [_median([x.milestones[m] for x in loads if m in x.milestones]) for m in MILESTONES]
        rows.append([case, server, *(f"{c:.2f}" for c in cells)])
    return rows


def _table(measured: Measured) -> Table:
    table = Table(*COLUMNS, title=f"OHIF, 300-slice CT, warm cache, median of {ROUNDS}")
    for row in _rows(measured):
        table.add_row(*row)
    return table


def _rounds(measured: Measured) -> list[str]:
    """Every round's two figures, first image / all slices, in seconds."""
    return [
        f"{server} {case}: " + ", ".join(f"{x.first_image:.2f} / {x.all_slices:.2f}" for x in loads)
        for (server, case), loads in sorted(measured.loads.items())
    ]


def _markdown(
    measured: Measured, data: dataset.BenchData, system: dict[str, Any], duration: float
) -> str:
    machine = facts.gather(
        orthanc=str(system.get("Version", "?")),
        dicomweb_plugin="loaded",
        isolated=network.is_isolated(),
    )
    if RIX_SOURCE:  # the measured rix is the snapshot, whatever the working tree holds
        machine = dataclasses.replace(machine, rix_commit=f"{_commit()} (snapshot of src/)")
    lines = [
        f"## Viewer {time.strftime('%Y-%m-%d %H:%M')}: OHIF on rix and on Orthanc, warm cache",
        "",
        *(f"- {line}" for line in machine.lines()),
        f"- browser: {browser.CHROMIUM} (Debian), headless, SwiftShader WebGL "
        "(tests/peers/browser.py "
        f"flags), Playwright {_version('playwright')}, viewport {VIEWPORT['width']}x"
        f"{VIEWPORT['height']}; OHIF {rix_viewer.prepared_version(ROOT / 'build' / 'ohif')} "
        "from build/ohif, the same dist for both",
        f"- data: the 300-slice CT ({data.ct_bytes / 1e6:.0f} MB, 512x512 16-bit, Explicit VR "
        f"Little Endian, synthetic patient) as {ROUNDS + 1} copies with new UIDs, stored by "
        "storescu into both servers from the same files",
        "- rix: `rix serve` (SQLite + files), OHIF at /viewer/ on its own /dicomweb, signed "
        "in with the session cookie",
        "- Orthanc: DICOMweb plugin; the dist served on the same origin by Orthanc's "
        "ServeFolders plugin (no pass-through); TCP_NODELAY=1, StorageCompression false, "
        "HttpCompressionEnabled false, ServeFolders AllowCache true",
        f"- per server one persistent Chromium profile (disk cache) warmed by one untimed load "
        f"of another copy; {ROUNDS} rounds alternating which server goes first; each round "
        "opens a copy not seen before (new study) then opens it again (reopened)",
        "- from the click on `a.open-viewer` to the first viewport canvas with >= 1000 lit "
        "pixels, and to the end of the 300th distinct /frames/ response (Resource Timing)",
        f"- run took {duration / 60:.1f} min",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
        *("| " + " | ".join(row) + " |" for row in _rows(measured)),
        "",
        "Where the time went (medians a load; frame times from Resource Timing of the frames "
        "fetched from the network; server CPU from /proc during the load):",
        "",
        "| " + " | ".join(DETAIL_COLUMNS) + " |",
        "|" + "---|" * len(DETAIL_COLUMNS),
        *("| " + " | ".join(row) + " |" for row in _detail_rows(measured)),
        "",
        "Milestones of a load (median s from the click):",
        "",
        "| case | server | " + " | ".join(MILESTONES) + " |",
        "|" + "---|" * (len(MILESTONES) + 2),
        *("| " + " | ".join(row) + " |" for row in _milestone_rows(measured)),
        "",
        "Rounds (first image / all slices, s):",
        "",
        *(f"- {line}" for line in _rounds(measured)),
        "",
        "Notes:",
        "",
        *(f"- {note}" for note in measured.notes),
        "",
        "Problems:",
        "",
        *(f"- {p}" for p in measured.problems or ["none"]),
        "",
    ]
    return "\n".join(lines)


def _version(package: str) -> str:
    return version(package)
