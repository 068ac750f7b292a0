"""Second opinions in Chromium (issue 6): a clinician shares a study from its page, the
consultant opens the emailed link with the PIN, reads the images in OHIF limited to the
share, sends an opinion naming a key image, and the clinician reads it in the portal."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, Response, expect

from tests.peers import browser
from tests.peers.smtp import SmtpServer, body
from tests.web.portal.conftest import USERNAME, Portal, Region
from tests.web.portal.test_portal import serious_violations, sign_in

SENDER_EMAIL = "portal.clinician@test-trust.nhs.example"
CONSULTANT = "consultant@specialist-centre.example"
OPINION = "No metastasis. The 3 mm nodule is a granuloma, unchanged: no follow-up needed."


@pytest.fixture(scope="module")
def sender(portal: Portal) -> str:
    portal.server.add_user(USERNAME, "clinician", trust="TEST", email=SENDER_EMAIL)
    return USERNAME


@pytest.fixture
def pages(chromium: Browser) -> Iterator[tuple[Page, Page]]:
    """The sender's browser and the consultant's: two profiles, no shared cookies. The
    sender's lets axe-core in (``bypass_csp``); the consultant's keeps the pages' policy,
    under which the link's own script must work."""
    one = chromium.new_context(viewport={"width": 1280, "height": 860}, bypass_csp=True)
    two = chromium.new_context(viewport={"width": 1280, "height": 860})
    try:
        yield one.new_page(), two.new_page()
    finally:
        one.close()
        two.close()


def test_a_second_opinion_round_trip(
    pages: tuple[Page, Page], portal: Portal, region: Region, smtp: SmtpServer, sender: str
) -> None:
    mine, theirs = pages
    del sender
    sign_in(mine, portal, f"/studies/{region.rita_test_study}")
    mine.get_by_role("link", name="Share for a second opinion").click()
    expect(mine.get_by_role("heading", name="Share for a second opinion")).to_be_visible()
    assert serious_violations(mine) == []
    mine.get_by_label("Recipient's name").fill("Dr Wendy Who")
    mine.get_by_label("Recipient's email").fill(CONSULTANT)
    mine.get_by_label("Purpose").fill("Nodule on the 2025 CT: metastasis or granuloma?")
    mine.get_by_label("Expires after").fill("7")
    mine.get_by_role("button", name="Create share and email the link").click()
    expect(mine.get_by_role("heading", name="Share created")).to_be_visible()
    pin = mine.locator("#share-pin").inner_text()
    link = mine.locator("#share-link").inner_text()
    assert re.fullmatch(r"\d{6}", pin)
    browser.screenshot(mine, "share-created")
    mailed = smtp.mailbox.wait_for(CONSULTANT)[-1]
    assert link in body(mailed)

    # the consultant: link, PIN, the shared study, the viewer
    theirs.goto(link)
    expect(theirs.get_by_role("heading", name="Enter the PIN")).to_be_visible()
    assert "#" not in theirs.url  # the token left the address bar
    theirs.get_by_label("PIN").fill(pin)
    theirs.get_by_role("button", name="Continue").click()
    expect(theirs.get_by_role("heading", name="Images shared for your opinion")).to_be_visible()
    assert theirs.url == portal.origin + "/share"
    expect(theirs.locator("ul.studies > li")).to_have_count(1)
    expect(theirs.get_by_text("Nodule on the 2025 CT")).to_be_visible()
    browser.screenshot(theirs, "share-recipient")
    watch = browser.Watch().attach(theirs)
    theirs.get_by_role("link", name="Open in viewer").click()
    browser.wait_for_image(theirs, watch=watch)
    # OHIF lists the patient's studies it can find: only the shared one
    expect(theirs.get_by_text("CT chest (TEST)").first).to_be_visible(timeout=20_000)
    expect(theirs.get_by_text("CT abdomen (PART)")).to_have_count(0)
    browser.screenshot(theirs, "share-viewer")

    # the opinion, naming a key image
    theirs.goto(portal.origin + "/share")
    theirs.get_by_label("Opinion").fill(OPINION)
    theirs.get_by_label("Key images").fill("1/3")
    theirs.get_by_role("button", name="Send opinion").click()
    expect(theirs.get_by_role("status")).to_contain_text("your opinion was sent")

    # the sender is told, and reads it in the portal
    told = smtp.mailbox.wait_for(SENDER_EMAIL)[-1]
    assert "opinion" in told["Subject"] and "Rowe" not in body(told)
    mine.goto(portal.origin + "/shares")
    row = mine.locator("tbody tr").filter(has_text="Dr Wendy Who").first
    expect(row.locator(".badge")).to_have_text("1 new")
    assert serious_violations(mine) == []
    row.get_by_role("link").first.click()
    expect(mine.locator("article.opinion")).to_contain_text(OPINION)
    expect(mine.locator("article.opinion")).to_contain_text("Key images: 1")
    uses = mine.locator("table tbody")
    expect(uses).to_contain_text("login (share-link)")
    expect(uses).to_contain_text("view")
    assert serious_violations(mine) == []
    browser.screenshot(mine, "share-opinion-received")
    # stored with the study: the study page lists the structured report
    mine.goto(f"{portal.origin}/studies/{region.rita_test_study}")
    expect(mine.get_by_text("Second opinion").first).to_be_visible()


@pytest.fixture
def consultant(chromium: Browser) -> Iterator[Page]:
    """A consultant's browser that lets axe-core in."""
    context = chromium.new_context(viewport={"width": 1280, "height": 860}, bypass_csp=True)
    try:
        yield context.new_page()
    finally:
        context.close()


def test_the_viewer_opens_nothing_beyond_the_share(
    consultant: Page, portal: Portal, region: Region
) -> None:
    theirs = consultant
    with httpx.Client(base_url=portal.origin, headers=portal.server.auth) as api:
        made = api.post(
            "/api/shares",
            json={
                "studies": [region.rita_test_study],
                "recipient_name": "Dr Nosy",
                "recipient_email": CONSULTANT,
                "days": 1,
                "pin": True,
            },
        ).json()
    theirs.goto(made["link"])
    expect(theirs.get_by_role("heading", name="Enter the PIN")).to_be_visible()
    assert serious_violations(theirs) == []
    theirs.get_by_label("PIN").fill(made["pin_code"])
    theirs.get_by_role("button", name="Continue").click()
    expect(theirs.get_by_role("heading", name="Images shared for your opinion")).to_be_visible()
    assert serious_violations(theirs) == []
    other = region.rita_part_study
    answers: list[Response] = []
    theirs.on(
        "response",
        lambda r: answers.append(r) if other in r.url and "/dicomweb/" in r.url else None,
    )
    theirs.goto(f"{portal.origin}/viewer/viewer?StudyInstanceUIDs={other}")
    theirs.wait_for_timeout(4000)
    assert answers  # OHIF asked for the study, and was answered:
    for answer in answers:
        if answer.status == 200:  # a query naming the study: answered with no match
            assert answer.json() == [], answer.url
        else:
            assert answer.status in (204, 403), (answer.url, answer.status)
    assert theirs.evaluate(browser.LIT_PIXELS) < 1000  # nothing of the other study drawn
    # the portal itself is not the consultant's
    for path in ("/search", f"/studies/{region.rita_test_study}", "/shares"):
        theirs.goto(portal.origin + path)
        assert "Images shared" not in theirs.content()
        expect(theirs.locator("body")).to_contain_text(re.compile("read-only|not|sign in", re.I))
