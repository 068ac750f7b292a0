"""The portal in a real browser: a server of the folder's own (SQLite only, to keep the
browser tests fast), one signed-in clinician, one small CT stored through STOW-RS, and
Debian's Chromium driven by Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from playwright.sync_api import Browser, BrowserContext
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from rix.config import Settings
from rix.web import viewer
from tests.peers import browser, dicomweb, images
from tests.peers.server import RixServer

USERNAME = "portal.clinician"
PASSWORD = "correct horse battery staple"
SLICES = 24
SIZE = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class Portal:
    server: RixServer
    origin: str
    study_uid: str
    patient_id: str
    patient_name: str


def phantom(*, patient_id: str, name: str, study_uid: str, series_uid: str, number: int) -> Dataset:
    """An axial CT slice of an elliptical body (soft tissue) with two lungs (air) and a
    spine (bone), in HU with a soft-tissue window and full patient geometry, so OHIF can
    stack it, reconstruct it in MPR and show dark and bright pixels a test can tell apart."""
    ds = images.ct(
        patient_id=patient_id,
        name=name,
        study_uid=study_uid,
        series_uid=series_uid,
        number=number,
        size=SIZE,
    )
    y, x = np.mgrid[-1 : 1 : SIZE * 1j, -1 : 1 : SIZE * 1j]
    hu = np.full((SIZE, SIZE), -1000.0)
    hu[(x / 0.85) ** 2 + (y / 0.6) ** 2 <= 1] = 40
    for side in (-0.4, 0.4):
        hu[((x - side) / 0.28) ** 2 + ((y + 0.05) / 0.4) ** 2 <= 1] = -800
    hu[(x**2 + (y - 0.42) ** 2) <= 0.08**2 * (1 + 0.3 * np.sin(number / 3))] = 700
    ds.PixelData = (hu + 1024).astype(np.uint16).tobytes()
    ds.ImagePositionPatient = [-100.0, -100.0, 2.5 * number]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [200 / SIZE, 200 / SIZE]
    ds.SliceThickness = 2.5
    ds.StudyDescription = "CT chest (synthetic)"
    ds.SeriesDescription = "Axial 2.5 mm"
    return ds


@pytest.fixture(scope="session")
def viewer_dir() -> Path:
    folder = Settings().viewer_dir
    if viewer.prepared_version(folder) is None:
        pytest.fail(f"no OHIF viewer in {folder}: run `make viewer` (make test does)")
    return folder


@pytest.fixture(scope="session")
def portal(tmp_path_factory: pytest.TempPathFactory, viewer_dir: Path) -> Iterator[Portal]:
    server = RixServer(data=tmp_path_factory.mktemp("portal") / "data").start()
    try:
        origin = f"http://127.0.0.1:{server.http_port}"
        stower = server.auth  # makes trust TEST and its API user
        clinician = ["--roles", "clinician", "--trust", "TEST", "--password", PASSWORD]
        server.rix("user", "add", USERNAME, *clinician)
        study_uid, series_uid = generate_uid(), generate_uid()
        who = {"patient_id": "PORTAL-1", "name": "Portal^Petra"}
        files = [
            dicomweb.part10(phantom(**who, study_uid=study_uid, series_uid=series_uid, number=n))
            for n in range(1, SLICES + 1)
        ]
        with httpx.Client(base_url=origin + "/dicomweb", headers=stower, timeout=60) as c:
            assert dicomweb.stow(c, files).status_code == 200
        yield Portal(
            server=server,
            origin=origin,
            study_uid=study_uid,
            patient_id=who["patient_id"],
            patient_name=who["name"],
        )
    finally:
        server.stop()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    with browser.chromium() as b:
        yield b


@pytest.fixture
def signed_in(chromium: Browser, portal: Portal) -> Iterator[BrowserContext]:
    """A fresh browser profile (empty cache) whose user signed in through the login form's
    POST, as the browser would send it; the session is its HttpOnly cookie."""
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    answer = context.request.post(
        portal.origin + "/login",
        form={"username": USERNAME, "password": PASSWORD, "next": "/"},
        max_redirects=0,
    )
    assert answer.status == 303, answer.text()
    try:
        yield context
    finally:
        context.close()
