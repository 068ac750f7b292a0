"""The turnaround dashboard in Chromium: a synthetic week across three trusts drawn as
charts, filters, and the CSV and JSON exports, for a radiologist and a region admin."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from playwright.sync_api import Browser, Page

from rix.workflow.turnaround_dashboard import CSV_COLUMNS
from tests.peers import browser
from tests.peers.archive import opened
from tests.peers.server import RixServer
from tests.web.portal.test_portal import serious_violations
from tests.workflow.week import load_week

PASSWORD = "correct horse battery staple"
RADIOLOGIST = "emh.reporter"
REGION_ADMIN = "region.watcher"


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("turnaround") / "data"
    with opened(data, "") as archive:
        load_week(archive, now=time.time())
    server = RixServer(data=data).start()
    try:
        server.add_user(RADIOLOGIST, "radiologist", trust="EMH", password=PASSWORD)
        server.add_user(REGION_ADMIN, "region-admin", password=PASSWORD)
        yield f"http://127.0.0.1:{server.http_port}"
    finally:
        server.stop(wait=False)


@contextmanager
def client(origin: str, username: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=origin, timeout=30) as c:
        answer = c.post("/login", data={"username": username, "password": PASSWORD})
        assert answer.status_code == 303, answer.text
        yield c


@pytest.fixture(params=[False])
def page(chromium: Browser, dashboard: str, request: pytest.FixtureRequest) -> Iterator[Page]:
    """Signed in as EMH's radiologist; the pages' policy enforced unless the test asks to
    inject axe (``bypass_csp``)."""
    context = chromium.new_context(
        viewport={"width": 1280, "height": 1560}, bypass_csp=request.param
    )
    answer = context.request.post(
        dashboard + "/login", form={"username": RADIOLOGIST, "password": PASSWORD, "next": "/"}
    )
    assert answer.ok
    try:
        yield context.new_page()
    finally:
        context.close()


def test_the_dashboard_draws_the_backlog_and_the_trend(page: Page, dashboard: str) -> None:
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Security Policy" in m.text else None)
    page.goto(dashboard + "/turnaround")
    # EMH's radiologist counts EMH's and its partner NGH's backlog, not SSX's
    assert page.locator("#unreported").inner_text() == "6"
    assert page.locator("#breached").inner_text() == "3"
    assert page.locator("svg rect.band").count() == 5
    assert page.locator("svg rect.arrivals").count() == 7
    assert page.locator("svg rect.reported").count() == 7
    assert page.locator("svg rect.breaches").count() == 7
    assert page.locator("svg circle.median").count() >= 3
    heights = page.locator("svg rect.band").evaluate_all(
        "rs => rs.map(r => Number(r.getAttribute('height')))"
    )
    assert all(h > 0 for h in heights)  # every age band holds a study here
    assert page.get_by_role("link", name="Turnaround").get_attribute("aria-current") == "page"
    assert refused == []  # no inline style or script under the pages' policy
    browser.screenshot(page, "portal-turnaround")


@pytest.mark.parametrize("page", [True], indirect=True)
def test_the_dashboard_has_no_serious_accessibility_violations(page: Page, dashboard: str) -> None:
    page.goto(dashboard + "/turnaround")
    assert serious_violations(page) == []


def test_the_filters_narrow_the_page(page: Page, dashboard: str) -> None:
    page.goto(dashboard + "/turnaround")
    page.get_by_label("Trust").select_option("NGH")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**trust=NGH**")
    assert page.locator("#unreported").inner_text() == "1"
    assert page.locator("table.turnaround tbody th a").all_inner_texts() == ["NGH"]


def test_csv_and_json_exports(dashboard: str) -> None:
    with client(dashboard, RADIOLOGIST) as c:
        answer = c.get("/api/turnaround", params={"format": "csv"})
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(answer.text)))
        assert tuple(rows[0]) == CSV_COLUMNS
        table = {(r[0], r[1]): dict(zip(CSV_COLUMNS, r, strict=True)) for r in rows[1:]}
        assert sorted(table) == [("*", "*"), ("EMH", "CT"), ("EMH", "MR"), ("NGH", "CT")]
        assert table["EMH", "MR"]["unreported >7d"] == "1"
        assert table["*", "*"]["unreported"] == "6"
        assert table["*", "*"]["oldest accession"].startswith("ACC")
        mine = c.get("/api/turnaround", params={"modality": "ct"}).json()
        assert mine["total"]["bands"] == {"<1h": 1, "1-4h": 2, "4-24h": 0, "1-7d": 1, ">7d": 0}
    with client(dashboard, REGION_ADMIN) as c:
        region = c.get("/api/turnaround", params={"days": 14}).json()
        assert region["total"]["unreported"] == 7 and len(region["trend"]) == 14
        assert region["total"]["oldest"]["study_uid"] == ""  # counts, not studies
        assert c.get("/api/turnaround", params={"days": 0}).status_code == 422


def test_the_export_needs_a_signed_in_user(dashboard: str) -> None:
    with httpx.Client(base_url=dashboard, timeout=30) as c:
        assert c.get("/api/turnaround").status_code == 401
