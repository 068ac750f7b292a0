"""The portal in Chromium (issue 5): sign in, find a patient held by two trusts, see one
timeline, open a study in OHIF with the other trust's study beside it, break glass,
launch from an EPR, download what was stored, and be refused what is not shared."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from pydicom import dcmread
from pydicom.uid import generate_uid

from tests.peers import browser, dicomweb
from tests.web.portal.conftest import (
    ADMIN,
    HOSTILE_DESCRIPTION,
    PASSWORD,
    USERNAME,
    Portal,
    Region,
    phantom,
)

ADMIN_PAGES = (
    "/admin",
    "/admin/trusts",
    "/admin/aes",
    "/admin/users",
    "/admin/agreements",
    "/admin/mpi",
    "/admin/jobs",
    "/status",
)


def sign_in(page: Page, portal: Portal, next_path: str = "/", user: str = USERNAME) -> None:
    page.goto(f"{portal.origin}/login?next={next_path}")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_a_clinician_finds_a_patient_of_two_trusts_and_opens_the_study_with_the_other(
    page: Page, portal: Portal, region: Region
) -> None:
    watch = browser.Watch().attach(page)
    sign_in(page, portal)
    expect(page).to_have_url(f"{portal.origin}/search")
    page.get_by_label("Name, hospital number or NHS number").fill("rowe")
    page.get_by_role("button", name="Search").click()
    row = page.locator("table.people tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("ROWE, Rita")
    expect(row.locator(".trust")).to_have_text(["PART", "TEST"])
    browser.screenshot(page, "portal-search")
    row.get_by_role("link", name="ROWE, Rita").click()
    studies = page.locator("table.timeline tbody tr")
    expect(studies).to_have_count(2)
    expect(studies.nth(0)).to_contain_text("CT chest (TEST)")  # newest first
    expect(studies.nth(1)).to_contain_text("CT abdomen (PART)")
    expect(studies.nth(1).locator("td").nth(4)).to_have_text("PART")
    page.wait_for_function(
        "() => [...document.querySelectorAll('img.thumb')].every(i => i.complete"
        " && i.naturalWidth > 0)"
    )
    browser.screenshot(page, "portal-timeline")
    studies.nth(0).get_by_role("link", name="Open in viewer").click()
    browser.wait_for_image(page, watch=watch)
    # OHIF's study browser lists the patient's other study, held by the other trust
    expect(page.get_by_text("CT abdomen (PART)").first).to_be_visible(timeout=20_000)
    browser.screenshot(page, "portal-viewer")
    assert watch.errors == [], watch.errors
    assert watch.hosts() == {portal.origin.split("//")[1]}


def test_break_glass_opens_the_partner_trusts_study_with_a_reason_on_record(
    page: Page, portal: Portal, region: Region
) -> None:
    sign_in(page, portal, f"/timeline?nhs_number={region.gary_nhs}")
    expect(page.locator("table.timeline tbody tr")).to_have_count(1)
    held = page.locator(".held")
    expect(held).to_contain_text("PART holds studies of this patient")
    held.get_by_role("button", name="Break glass…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    browser.screenshot(page, "portal-break-glass")
    dialog.get_by_role("button", name="Open records").click()  # no reason: the form stops it
    expect(dialog).to_be_visible()
    dialog.get_by_label("Clinical reason").fill("Collapsed in ED, previous head CT needed")
    dialog.get_by_role("button", name="Open records").click()
    expect(page.locator("table.timeline tbody tr")).to_have_count(2)
    expect(page.locator(".held")).to_have_count(0)
    expect(page.get_by_role("status")).to_contain_text("it opened 1 study (1 at PART)")
    admin = {"Authorization": f"Bearer {region.admin_token}"}
    with httpx.Client(base_url=portal.origin, headers=admin) as api:
        events = api.get("/api/audit", params={"user": USERNAME, "limit": 500}).json()
    glass = [e for e in events if e["kind"] == "break-glass"]
    ours = [e for e in glass if "Collapsed in ED" in str(e["detail"])]
    assert [(e["outcome"], e["nhs_number"], e["detail"]["reason"]) for e in ours] == [
        ("success", region.gary_nhs, "Collapsed in ED, previous head CT needed")
    ], glass


def test_an_epr_launch_opens_the_study_after_sign_in(
    page: Page, portal: Portal, region: Region
) -> None:
    launch = f"/IHEInvokeImageDisplay?requestType=STUDY&studyUID={region.rita_test_study}"
    page.goto(portal.origin + launch)
    expect(page).to_have_url(f"{portal.origin}/login?next={quote(launch, safe='')}")
    page.get_by_label("User name").fill(USERNAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**/viewer/viewer?StudyInstanceUIDs={region.rita_test_study}")
    browser.wait_for_image(page)
    page.goto(f"{portal.origin}/IHEInvokeImageDisplay?requestType=PATIENT&patientID=T-100")
    expect(page.locator("h1")).to_have_text("ROWE, Rita")
    expect(page.locator("table.timeline tbody tr")).to_have_count(2)


def test_a_download_holds_a_dicomdir_and_every_file_as_stored(
    page: Page, portal: Portal, region: Region
) -> None:
    sign_in(page, portal, f"/studies/{region.rita_test_study}")
    with page.expect_download() as waiting:
        page.get_by_role("link", name="Download (zip with DICOMDIR)").click()
    saved = Path(waiting.value.path())
    with zipfile.ZipFile(saved) as media:
        names = media.namelist()
        assert names[0] == "DICOMDIR"
        dicomdir = dcmread(io.BytesIO(media.read("DICOMDIR")))
        images = [r for r in dicomdir.DirectoryRecordSequence if r.DirectoryRecordType == "IMAGE"]
        assert len(images) == len(names) - 1 == 12
        stored = {p.stem: p for p in portal.server.data.rglob("*.dcm")}
        for record in images:
            name = "/".join(record.ReferencedFileID)
            assert media.read(name) == stored[record.ReferencedSOPInstanceUIDInFile].read_bytes()


def test_a_study_not_shared_cannot_be_opened_by_typing_its_address(
    signed_in: BrowserContext, portal: Portal, region: Region
) -> None:
    page = signed_in.new_page()
    other = region.hidden_study
    for path in (
        f"/studies/{other}",
        f"/studies/{other}/download",
        f"/IHEInvokeImageDisplay?requestType=STUDY&studyUID={other}",
    ):
        answer = page.goto(portal.origin + path)
        assert answer is not None and answer.status == 403, path
        expect(page.locator("h1")).to_have_text("Not shared with you")
    answer = page.goto(f"{portal.origin}/studies/1.2.3.4.5.6.7")
    assert answer is not None and answer.status == 404


def test_hostile_patient_name_and_description_render_as_text(
    page: Page, portal: Portal, region: Region
) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sign_in(page, portal, "/search?q=T-666")
    name = page.locator("table.people a.person")
    expect(name).to_contain_text("<IMG SRC")  # the family name, upper-cased, as text
    name.click()
    row = page.locator("table.timeline tbody tr")
    expect(row).to_contain_text(HOSTILE_DESCRIPTION)
    row.get_by_role("link", name=HOSTILE_DESCRIPTION).click()
    expect(page.locator("h1")).to_have_text(HOSTILE_DESCRIPTION)
    assert page.evaluate("() => window.pwned") is None
    assert page.locator("main script, main img[src=x], main b").count() == 0
    assert dialogs == []


AXE = Path(__file__).resolve().parents[3] / "build" / "assets" / "axe.min.js"


def serious_violations(page: Page) -> list[str]:
    """axe-core's serious and critical findings on the page (WCAG 2.x A and AA rules)."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        """async () => {
          const r = await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21aa',
            'wcag22aa', 'best-practice']});
          return {passes: r.passes.length, serious: r.violations
            .filter(v => v.impact === 'serious' || v.impact === 'critical')
            .map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))};
        }"""
    )
    assert result["passes"] > 10  # axe ran its rules on a real page
    return list(result["serious"])


def test_pages_have_no_serious_accessibility_violations(
    chromium: Browser, portal: Portal, region: Region
) -> None:
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: `make assets` (make test does) installs axe-core")
    # axe is injected as a script of the test's own: the pages' policy would refuse it
    context = chromium.new_context(bypass_csp=True)
    try:
        page = context.new_page()
        page.goto(f"{portal.origin}/login")
        found = {"/login": serious_violations(page)}
        sign_in(page, portal, "/search")
        for path in (
            "/search?q=rowe",
            f"/timeline?nhs_number={region.rita_nhs}",
            "/timeline?patient=TEST%2FT-101",
            f"/studies/{region.rita_test_study}",
            f"/studies/{region.hidden_study}",
            "/import",
        ):
            page.goto(portal.origin + path)
            found[path] = serious_violations(page)
        page.context.clear_cookies()
        sign_in(page, portal, "/admin", user=ADMIN)
        for path in ADMIN_PAGES:
            page.goto(portal.origin + path)
            found[path] = serious_violations(page)
    finally:
        context.close()
    assert {path: v for path, v in found.items() if v} == {}


def test_a_clerk_imports_a_zip_reconciling_the_outside_patient_to_their_own_record(
    page: Page, portal: Portal, region: Region, tmp_path: Path
) -> None:
    study_uid, series_uid = generate_uid(), generate_uid()
    media = tmp_path / "from-another-hospital.zip"
    with zipfile.ZipFile(media, "w") as cd:
        for n in range(1, 4):
            ds = phantom(
                patient_id="OUT-77",
                name="Glass^Gary",
                study_uid=study_uid,
                series_uid=series_uid,
                number=n,
            )
            ds.StudyDescription = "CT head (outside hospital)"
            cd.writestr(f"IMAGES/IM{n:04d}", dicomweb.part10(ds))
    sign_in(page, portal, "/import")
    page.set_input_files("#files", str(media))
    page.get_by_role("button", name="Upload").click()
    patient = page.locator("#patients fieldset")
    expect(patient).to_contain_text("outside ID OUT-77", timeout=30_000)
    patient.get_by_label("Find the record at your trust").fill("T-101")
    patient.get_by_role("button", name="Search").click()
    patient.get_by_role("radio", name="Glass^Gary").check()
    browser.screenshot(page, "portal-import-reconcile")
    page.get_by_role("button", name="Store under the chosen records").click()
    figures = page.locator("#summary-figures")
    expect(figures).to_contain_text("Stored3", timeout=60_000)
    page.goto(f"{portal.origin}/timeline?patient=TEST%2FT-101")
    expect(page.locator("table.timeline")).to_contain_text("CT head (outside hospital)")
