"""The portal's pages over plain HTTP: who gets in, the headers every page carries, and
the CSRF rules (rix.web.csrf) for forms and for the API used with a session cookie."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread

from tests.peers import dcmtk
from tests.web.portal.conftest import PASSWORD, USERNAME, Portal, Region

PAGES = ("/search", "/timeline?nhs_number=9434765919", "/IHEInvokeImageDisplay")


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', page)
    assert found, "the page carries no CSRF token"
    return found.group(1)


@pytest.fixture
def http(portal: Portal) -> Iterator[httpx.Client]:
    """A browser-like client signed in with the login form (its own session)."""
    with httpx.Client(base_url=portal.origin, timeout=30) as client:
        answer = client.post("/login", data={"username": USERNAME, "password": PASSWORD})
        assert answer.status_code == 303
        yield client


@pytest.mark.parametrize("path", [*PAGES, "/studies/1.2.3"])
def test_a_page_without_a_session_sends_the_browser_to_sign_in_and_back(
    portal: Portal, path: str
) -> None:
    answer = httpx.get(portal.origin + path)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=%2F")


def test_pages_carry_a_strict_policy_and_are_never_cached(http: httpx.Client) -> None:
    answer = http.get("/search", params={"q": "rowe"})
    assert answer.status_code == 200
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy and "form-action 'self'" in policy
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"
    assert "<script>" not in answer.text  # no inline script to allow


def test_the_session_cookie_is_httponly_samesite_and_secure_under_tls(portal: Portal) -> None:
    form = {"username": USERNAME, "password": PASSWORD}
    plain = httpx.post(portal.origin + "/login", data=form)
    cookie = plain.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
    # behind a TLS proxy on this host (uvicorn trusts X-Forwarded-Proto from loopback)
    tls = httpx.post(portal.origin + "/login", data=form, headers={"X-Forwarded-Proto": "https"})
    assert "secure" in tls.headers["set-cookie"].lower()


def test_a_form_without_the_sessions_token_is_refused_and_changes_nothing(
    http: httpx.Client, region: Region
) -> None:
    form = {"reason": "forged", "nhs_number": region.gary_nhs}
    assert http.post("/break-glass", data=form).status_code == 403
    other_session = "0" * 64
    assert http.post("/break-glass", data={**form, "csrf": other_session}).status_code == 403
    page = http.get("/timeline", params={"nhs_number": region.rita_nhs}).text
    token = csrf_of(page)
    from_elsewhere = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    refused = http.post("/break-glass", data={**form, "csrf": token}, headers=from_elsewhere)
    assert refused.status_code == 403
    assert "another site" in refused.text


def test_a_break_glass_that_would_open_nothing_is_refused_with_the_reason(
    http: httpx.Client,
) -> None:
    """Nobody holds images of this person: the dialog's answer is the API's, 403 and why."""
    token = csrf_of(http.get("/search").text)
    form = {"reason": "unconscious in ED, prior imaging", "nhs_number": "4010232218"}
    refused = http.post("/break-glass", data={**form, "csrf": token})
    assert refused.status_code == 403
    assert "break-glass would open nothing" in refused.text


def test_sign_out_needs_the_token_and_then_ends_the_session(http: httpx.Client) -> None:
    assert http.post("/logout").status_code == 403
    assert http.get("/search").status_code == 200  # still signed in
    token = csrf_of(http.get("/search").text)
    assert http.post("/logout", data={"csrf": token}).status_code == 303
    assert http.get("/search").status_code == 303


def test_signing_in_from_another_site_is_refused(portal: Portal) -> None:
    form = {"username": USERNAME, "password": PASSWORD}
    answer = httpx.post(
        portal.origin + "/login", data=form, headers={"Origin": "https://evil.example"}
    )
    assert answer.status_code == 403
    assert "set-cookie" not in answer.headers


def test_the_api_with_a_session_cookie_needs_the_token_in_a_header(
    http: httpx.Client, region: Region
) -> None:
    body = {"nhs_number": region.rita_nhs, "reason": "checking the header rule"}
    assert http.post("/api/break-glass", json=body).status_code == 403
    token = csrf_of(http.get("/search").text)
    assert (
        http.post("/api/break-glass", json=body, headers={"X-CSRF-Token": token}).status_code == 201
    )


def test_a_search_by_nhs_number_names_partner_trusts_holding_the_patient(
    http: httpx.Client, region: Region
) -> None:
    """Gary is held at PART, hidden from TEST's clinicians until break-glass: a search by
    his NHS number says so; a search by name shows only what the user may open."""
    by_number = http.get("/search", params={"q": region.gary_nhs}).text
    assert '<span class="trust held">PART <small>(held)</small></span>' in by_number
    by_name = http.get("/search", params={"q": "hidden"}).text
    assert "HIDDEN" not in by_name and "No patient found" in by_name


def test_iid_names_the_request_it_cannot_answer(http: httpx.Client) -> None:
    assert http.get("/IHEInvokeImageDisplay", params={"requestType": "SERIES"}).status_code == 400
    answer = http.get(
        "/IHEInvokeImageDisplay", params={"requestType": "STUDY", "studyUID": "not-a-uid"}
    )
    assert answer.status_code == 400
    assert (
        http.get(
            "/IHEInvokeImageDisplay", params={"requestType": "STUDY", "accessionNumber": "NOPE"}
        ).status_code
        == 404
    )


def test_send_from_the_study_page_delivers_the_study_to_the_trusts_destination(
    http: httpx.Client, portal: Portal, region: Region, tmp_path: Path
) -> None:
    """A clinician sends a study to a DICOM destination of their own trust that stores (a
    PACS or a workstation): a durable job delivers every instance, as stored, to DCMTK's
    storescp; a destination of another trust, or a modality of their own, is refused and
    never offered."""
    admin = {"Authorization": f"Bearer {region.admin_token}"}
    with dcmtk.storescp(tmp_path / "received", ae_title="TEST_WS") as scp:
        with httpx.Client(base_url=portal.origin, headers=admin) as api:
            for title, trust, kind in (
                ("TEST_WS", "TEST", "workstation"),
                ("PART_WS", "PART", "workstation"),
                ("TEST_CT", "TEST", "modality"),
            ):
                peer = {"title": title, "host": "127.0.0.1", "port": scp.port, "trust": trust}
                assert api.post("/api/aes", json={**peer, "kind": kind}).status_code == 201
            kinds = {a["title"]: a["kind"] for a in api.get("/api/aes").json()}
            assert kinds["TEST_CT"] == "modality" and kinds["TEST_WS"] == "workstation"
        page = http.get(f"/studies/{region.gary_test_study}")
        assert '<option value="TEST_WS">' in page.text and "PART_WS" not in page.text
        assert "TEST_CT" not in page.text
        token = csrf_of(page.text)
        form = {"csrf": token, "destination": "PART_WS"}
        assert http.post(f"/studies/{region.gary_test_study}/send", data=form).status_code == 403
        form["destination"] = "TEST_CT"
        refused = http.post(f"/studies/{region.gary_test_study}/send", data=form)
        assert refused.status_code == 403
        assert "TEST_CT is a modality" in refused.text
        form["destination"] = "TEST_WS"
        sent = http.post(f"/studies/{region.gary_test_study}/send", data=form)
        assert sent.status_code == 303
        assert sent.headers["location"].endswith("?sent=TEST_WS")
        deadline = time.monotonic() + 60
        while len(list(scp.folder.glob("*"))) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        received = {dcmread(p).SOPInstanceUID for p in scp.folder.glob("*")}
    assert len(received) == 4
    assert {dcmread(p).StudyInstanceUID for p in (tmp_path / "received").glob("*")} == {
        region.gary_test_study
    }
