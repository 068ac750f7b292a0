"""The reporting pages in Chromium: a radiologist of TEST finds a partner trust's study on
the shared worklist, claims it, writes the report from a template and signs it final; the
study page then shows the report. An administrator puts a radiologist on the rota. The
pages pass axe's serious and critical checks."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from pydicom.uid import generate_uid

from tests.peers import browser, dicomweb
from tests.web.portal.conftest import ADMIN, PARTNER, PASSWORD, Portal, Region, phantom
from tests.web.portal.test_portal import AXE, serious_violations, sign_in

RADIOLOGIST = "portal.radiologist"
REPORT = "No collapse or consolidation.\nConclusion: normal chest."


@dataclass(frozen=True, slots=True, kw_only=True)
class ToReport:
    study_uid: str


@pytest.fixture(scope="module")
def to_report(portal: Portal, region: Region) -> ToReport:
    """A radiologist of TEST, and a CT stored by the partner trust for a patient with no
    relationship at TEST: on TEST's worklist, its images closed to TEST until claimed."""
    admin = {"Authorization": f"Bearer {region.admin_token}"}
    with httpx.Client(base_url=portal.origin, headers=admin, timeout=60) as api:
        user = {
            "username": RADIOLOGIST,
            "roles": ["radiologist"],
            "trust": "TEST",
            "display_name": "Dr Portal Radiologist",
            "password": PASSWORD,
        }
        assert api.post("/api/users", json=user).status_code == 201
        token = api.post("/api/users/part.sender/tokens", json={}).json()["token"]
    study_uid, series_uid = str(generate_uid()), str(generate_uid())
    files = []
    for n in (1, 2):
        ds = phantom(
            patient_id="P-REP",
            name="Reporter^Ruth",
            study_uid=study_uid,
            series_uid=series_uid,
            number=n,
        )
        ds.StudyDescription = "CT chest for reporting"
        ds.BodyPartExamined = "CHEST"
        files.append(dicomweb.part10(ds))
    part = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=portal.origin + "/dicomweb", headers=part, timeout=60) as http:
        assert dicomweb.stow(http, files).status_code == 200
    return ToReport(study_uid=study_uid)


def test_a_radiologist_claims_a_partners_study_and_signs_the_report(
    page: Page, portal: Portal, to_report: ToReport
) -> None:
    uid = to_report.study_uid
    sign_in(page, portal, f"/worklist?trust={PARTNER}", user=RADIOLOGIST)
    row = page.locator(f"tr[data-study='{uid}']")
    expect(row).to_contain_text("CT chest for reporting")
    expect(row).to_contain_text("Outpatient")
    browser.screenshot(page, "portal-worklist")
    page.goto(f"{portal.origin}/studies/{uid}")
    expect(page.get_by_role("alert")).to_contain_text("not shared with you")

    page.goto(f"{portal.origin}/worklist?trust={PARTNER}")
    row.get_by_role("button", name="Claim").click()
    expect(page.get_by_role("status")).to_have_text("You are reporting this study.")
    text = page.get_by_label("Report", exact=True)
    expect(text).to_have_value(re.compile("Lungs and airways:"))  # CT chest: the study's
    page.get_by_label("Template").select_option("General")  # reporting.js fills it in
    expect(text).to_have_value("Clinical details:\n\nTechnique:\n\nFindings:\n\nConclusion:\n")
    text.fill(REPORT)
    browser.screenshot(page, "portal-report-editor")
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("status")).to_have_text("Draft saved.")
    expect(text).to_have_value(REPORT)
    page.get_by_role("button", name="Sign final").click()
    expect(page.get_by_role("status")).to_contain_text("Final report signed")
    expect(page.locator(".report-versions")).to_contain_text("No collapse or consolidation.")
    expect(page.get_by_role("button", name="Claim to report")).to_be_visible()  # to add to it

    page.goto(f"{portal.origin}/studies/{uid}")  # the author's report keeps the images open
    expect(page.locator("pre.report-text")).to_contain_text("Conclusion: normal chest.")
    expect(page.locator("#report + p")).to_contain_text("Final · Dr Portal Radiologist")


def test_a_claim_held_by_another_is_refused_naming_the_holder(
    page: Page, portal: Portal, region: Region, to_report: ToReport
) -> None:
    del to_report
    with httpx.Client(base_url=portal.origin, headers=portal.server.auth, timeout=60) as api:
        found = api.get("/api/worklist", params={"trust": PARTNER}).json()["studies"]
        claimed = api.post(f"/api/worklist/{found[0]['study_uid']}/claim")
        assert claimed.status_code == 200, claimed.text  # tester, TEST's other radiologist
    uid = found[0]["study_uid"]
    sign_in(page, portal, f"/reports/{uid}", user=RADIOLOGIST)
    expect(page.get_by_role("note")).to_contain_text("Being reported by tester")
    # until when, with the day and the zone (display_timezone): "until 7 Dec 2026 21:42 GMT."
    expect(page.get_by_role("note")).to_contain_text(
        re.compile(r"until \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d (GMT|BST)\.")
    )
    expect(page.get_by_role("button", name="Claim to report")).to_have_count(0)
    token = portal.server.create_token(RADIOLOGIST)
    with httpx.Client(base_url=portal.origin, timeout=60) as api:
        refused = api.post(
            f"/api/worklist/{uid}/claim", headers={"Authorization": f"Bearer {token}"}
        )
    assert refused.status_code == 409, refused.text
    assert re.search(r"claimed until .*\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", refused.text)
    with httpx.Client(base_url=portal.origin, headers=portal.server.auth, timeout=60) as api:
        assert api.delete(f"/api/worklist/{uid}/claim").json()["released"] is True


def test_an_administrator_puts_a_radiologist_on_the_rota(page: Page, portal: Portal) -> None:
    sign_in(page, portal, "/rota", user=ADMIN)
    start = datetime.now().replace(second=0, microsecond=0) - timedelta(hours=1)
    page.get_by_label("Radiologist (user name)").fill(RADIOLOGIST)
    page.get_by_label("Reports for").select_option("TEST")
    page.get_by_label("Sub-specialty").fill("Chest")
    page.get_by_label("From").fill(start.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Until").fill((start + timedelta(hours=9)).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Add shift").click()
    expect(page.get_by_role("status")).to_have_text("Shift added.")
    expect(page.locator(".on-now")).to_contain_text("Dr Portal Radiologist · TEST · chest")


def test_the_reporting_pages_have_no_serious_accessibility_violations(
    chromium: Browser, portal: Portal, to_report: ToReport
) -> None:
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: `make assets` (make test does) installs axe-core")
    context = chromium.new_context(bypass_csp=True)
    try:
        page = context.new_page()
        sign_in(page, portal, "/worklist", user=RADIOLOGIST)
        found = {}
        for path in ("/worklist?status=all", f"/reports/{to_report.study_uid}", "/rota"):
            page.goto(portal.origin + path)
            found[path] = serious_violations(page)
    finally:
        context.close()
    assert {path: v for path, v in found.items() if v} == {}
