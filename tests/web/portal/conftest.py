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
from playwright.sync_api import Browser, BrowserContext, Page
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from rix.web import viewer
from tests.peers import dicomweb, images
from tests.peers.server import VIEWER, RixServer
from tests.peers.smtp import SmtpServer

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
    folder = VIEWER
    if viewer.prepared_version(folder) is None:
        pytest.fail(f"no OHIF viewer in {folder}: run `make viewer` (make test does)")
    return folder


@pytest.fixture(scope="session")
def smtp() -> Iterator[SmtpServer]:
    """The portal server's mail server: share links and alerts arrive here."""
    with SmtpServer() as server:
        yield server


@pytest.fixture(scope="session")
def portal(
    tmp_path_factory: pytest.TempPathFactory, viewer_dir: Path, smtp: SmtpServer
) -> Iterator[Portal]:
    data = tmp_path_factory.mktemp("portal") / "data"
    server = RixServer(data=data, extra_env=smtp.env).start()
    try:
        origin = f"http://127.0.0.1:{server.http_port}"
        stower = server.auth  # makes trust TEST and its API user
        server.add_user(USERNAME, "clinician", trust="TEST", password=PASSWORD)
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
        server.stop(wait=False)


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


ADMIN = "portal.admin"
PARTNER = "PART"
HOSTILE_NAME = "<img src=x onerror=alert(1)>^<script>window.pwned=1</script>"
HOSTILE_DESCRIPTION = '"><script>window.pwned=2</script><b>bold</b>'


def nhs_number(first_nine: str) -> str:
    """A valid NHS number starting with ``first_nine`` (modulus 11), for synthetic patients."""
    total = sum(int(d) * w for d, w in zip(first_nine, range(10, 1, -1), strict=True))
    check = (11 - total % 11) % 11
    if check == 10:
        raise ValueError(f"{first_nine} has no valid check digit")
    return first_nine + str(check)


@dataclass(frozen=True, slots=True, kw_only=True)
class Region:
    """Two trusts sharing images: TEST (the portal user's) and PART (a partner). Rita has
    a referral at TEST, so her PART study is open to TEST's clinicians; Gary has none, so
    his PART study is held there until break-glass; Henry's name and description are
    hostile markup."""

    rita_nhs: str
    rita_test_study: str
    rita_part_study: str
    gary_nhs: str
    gary_test_study: str
    gary_part_study: str
    hostile_study: str
    hidden_study: str  # at PART, of a patient with no relationship at TEST: never opened
    admin_token: str


def _study(
    http: httpx.Client,
    *,
    patient_id: str,
    name: str,
    nhs: str,
    description: str,
    date: str,
    slices: int,
) -> str:
    study_uid, series_uid = generate_uid(), generate_uid()
    files = []
    for n in range(1, slices + 1):
        ds = phantom(
            patient_id=patient_id, name=name, study_uid=study_uid, series_uid=series_uid, number=n
        )
        ds.PatientBirthDate = "19600101"
        ds.PatientSex = "F"
        ds.StudyDescription = description
        ds.StudyDate = date
        if nhs:
            item = Dataset()
            item.PatientID = nhs
            item.IssuerOfPatientID = "NHS"
            ds.OtherPatientIDsSequence = [item]
        files.append(dicomweb.part10(ds))
    answer = dicomweb.stow(http, files)
    assert answer.status_code == 200, answer.text
    return study_uid


@pytest.fixture(scope="session")
def region(portal: Portal) -> Region:
    server = portal.server
    server.add_user(ADMIN, "region-admin", password=PASSWORD)
    admin_token = server.create_token(ADMIN)
    admin = {"Authorization": f"Bearer {admin_token}"}
    with httpx.Client(base_url=portal.origin, headers=admin, timeout=60) as api:
        for path, body in (
            ("/api/trusts", {"code": PARTNER, "name": "Partner Hospitals NHS Trust"}),
            ("/api/agreements", {"trust": "TEST", "other": PARTNER}),
            ("/api/users", {"username": "part.sender", "roles": ["clinician"], "trust": PARTNER}),
        ):
            assert api.post(path, json=body).status_code == 201, api.post(path, json=body).text
        part_token = api.post("/api/users/part.sender/tokens", json={}).json()["token"]
    rita, gary = nhs_number("943476591"), nhs_number("401023213")
    test_http = httpx.Client(base_url=portal.origin + "/dicomweb", headers=server.auth, timeout=60)
    part_http = httpx.Client(
        base_url=portal.origin + "/dicomweb",
        headers={"Authorization": f"Bearer {part_token}"},
        timeout=60,
    )
    with test_http, part_http:
        found = Region(
            rita_nhs=rita,
            rita_test_study=_study(
                test_http,
                patient_id="T-100",
                name="Rowe^Rita",
                nhs=rita,
                description="CT chest (TEST)",
                date="20250301",
                slices=12,
            ),
            rita_part_study=_study(
                part_http,
                patient_id="P-200",
                name="Rowe^Rita",
                nhs=rita,
                description="CT abdomen (PART)",
                date="20240115",
                slices=6,
            ),
            gary_nhs=gary,
            gary_test_study=_study(
                test_http,
                patient_id="T-101",
                name="Glass^Gary",
                nhs=gary,
                description="CT head (TEST)",
                date="20250610",
                slices=4,
            ),
            gary_part_study=_study(
                part_http,
                patient_id="P-201",
                name="Glass^Gary",
                nhs=gary,
                description="CT head (PART)",
                date="20230920",
                slices=4,
            ),
            hostile_study=_study(
                test_http,
                patient_id="T-666",
                name=HOSTILE_NAME,
                nhs="",
                description=HOSTILE_DESCRIPTION,
                date="20250101",
                slices=2,
            ),
            hidden_study=_study(
                part_http,
                patient_id="P-999",
                name="Hidden^Hannah",
                nhs="",
                description="MR knee (PART)",
                date="20250505",
                slices=1,
            ),
            admin_token=admin_token,
        )
    # a TEST clinician records the referral at TEST (rix.region.admin.record_relationship)
    with httpx.Client(base_url=portal.origin, headers=server.auth, timeout=60) as api:
        referral = {"trust": "TEST", "kind": "referral", "nhs_number": rita}
        assert api.post("/api/relationships", json=referral).status_code == 201
    return found


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    """A fresh browser context per test: no cookie or cache carried from another."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()
