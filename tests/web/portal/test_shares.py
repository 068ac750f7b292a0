"""Second opinions (issue 6) over HTTP: a share link's holder sees exactly the shared
studies, for exactly as long as the share is open, and nothing of the token leaks.

The recipient is an ``httpx`` client holding only the share's cookie, as a browser would
after opening the link; the browser flow itself is in ``test_share_pages.py``.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from rix.web import csrf
from tests.peers import dicomweb
from tests.peers.smtp import SmtpServer, body
from tests.web.portal.conftest import Portal, Region

OWNER_EMAIL = "tester@test-trust.nhs.example"
RECIPIENT = "dr.who@specialist-centre.example"
OCTETS = 'multipart/related; type="application/octet-stream"'
DICOMS = 'multipart/related; type="application/dicom"; boundary=b'


@dataclass(frozen=True, slots=True)
class Opened:
    client: httpx.Client
    share: dict[str, Any]


@pytest.fixture(scope="module")
def owner(portal: Portal) -> dict[str, str]:
    """``tester`` (clinician and radiologist of TEST) with an address for alerts."""
    headers = portal.server.auth
    portal.server.add_user("tester", "clinician,radiologist", trust="TEST", email=OWNER_EMAIL)
    return headers


@pytest.fixture
def api(portal: Portal, owner: dict[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=portal.origin, headers=owner, timeout=60) as client:
        yield client


def create(api: httpx.Client, region: Region, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "studies": [region.rita_test_study, region.rita_part_study],
        "recipient_name": "Dr Wendy Who",
        "recipient_email": RECIPIENT,
        "purpose": "Rowe Rita: ?metastasis, please compare with 2024",
        "days": 7,
        **fields,
    }
    answer = api.post("/api/shares", json=body)
    assert answer.status_code == 201, answer.text
    made: dict[str, Any] = answer.json()
    return made


@contextmanager
def open_link(
    portal: Portal, share: dict[str, Any], pin: str | None = None
) -> Iterator[httpx.Client]:
    """What the link's page does: post the fragment's token, then the PIN when asked."""
    with httpx.Client(base_url=portal.origin, timeout=60) as client:
        yield _opened(client, share, pin)


def _opened(client: httpx.Client, share: dict[str, Any], pin: str | None) -> httpx.Client:
    token = share["link"].split("#", 1)[1]
    answer = client.post("/s", data={"token": token})
    assert answer.status_code == 303, answer.text
    assert answer.headers["referrer-policy"] == "no-referrer"
    if share["pin"]:
        assert answer.headers["location"] == "/share/pin"
        if pin is not None:
            assert give_pin(client, pin).status_code == 303
    return client


def give_pin(client: httpx.Client, pin: str) -> httpx.Response:
    token = csrf.token_for(client.cookies["rix_share"])
    return client.post("/share/pin", data={"pin": pin, "csrf": token})


def study_uids(answer: httpx.Response) -> set[str]:
    assert answer.status_code in (200, 204), answer.text
    if answer.status_code == 204:
        return set()
    return {dicomweb.first_value(r, "0020000D") for r in answer.json()}


def nothing(answer: httpx.Response) -> bool:
    """A QIDO answer with no match (PS3.18 answers 204, or 200 with an empty list)."""
    return answer.status_code == 204 or (answer.status_code == 200 and answer.json() == [])


def test_the_email_carries_the_link_and_nothing_about_the_patient(
    api: httpx.Client, region: Region, smtp: SmtpServer, portal: Portal
) -> None:
    before = len(smtp.mailbox.to(RECIPIENT))
    share = create(api, region, recipient_email=RECIPIENT, pin=True)
    assert share["mailed"] is True
    assert len(share["pin_code"]) == 6 and share["pin_code"].isdigit()
    message = smtp.mailbox.wait_for(RECIPIENT, count=before + 1)[-1]
    text = body(message) + message["Subject"]
    assert share["link"] in text
    assert share["link"].startswith(portal.origin + "/s#")
    assert share["pin_code"] not in text  # the PIN goes another way
    for secret in ("Rowe", "ROWE", "Rita", "T-100", "P-200", region.rita_nhs, "1960", "CT ",
                   "metastasis", region.rita_test_study, region.rita_part_study):  # fmt: skip
        assert secret not in text, secret


def test_a_recipient_sees_the_shared_studies_and_no_other(
    api: httpx.Client, region: Region, portal: Portal
) -> None:
    share = create(api, region, studies=[region.rita_test_study])
    shared, other = region.rita_test_study, region.rita_part_study  # same patient, not shared
    strangers = [other, region.gary_test_study, region.hidden_study, portal.study_uid]
    with open_link(portal, share, share["pin_code"]) as web:
        assert study_uids(web.get("/dicomweb/studies")) == {shared}
        assert study_uids(web.get("/dicomweb/regional/studies")) == {shared}
        # the person's other study, named by UID, by patient or through the regional mount
        for uid in strangers:
            assert (
                study_uids(web.get("/dicomweb/studies", params={"StudyInstanceUID": uid})) == set()
            )
            assert nothing(web.get(f"/dicomweb/studies/{uid}/series"))
            assert nothing(web.get(f"/dicomweb/studies/{uid}/instances"))
            assert web.get(f"/dicomweb/studies/{uid}/metadata").status_code == 403
            assert web.get(f"/dicomweb/studies/{uid}/thumbnail").status_code == 403
            instance = f"/dicomweb/studies/{uid}/series/1.2/instances/1.2"
            for tail in ("/rendered", "/frames/1", "/metadata", "/thumbnail", ""):
                assert web.get(instance + tail).status_code == 403, tail
            assert web.get(f"/dicomweb/studies/{uid}").status_code == 403
            wado = {"requestType": "WADO", "studyUID": uid, "seriesUID": "1.2", "objectUID": "1.2"}
            assert web.get("/wado", params=wado).status_code == 403
        regional = web.get("/dicomweb/regional/studies", params={"PatientID": "PART/P-200"})
        assert study_uids(regional) == {shared}  # the person's, as far as the share reaches
        series = web.get("/dicomweb/series").json()
        assert {dicomweb.first_value(s, "0020000D") for s in series} == {shared}
        instances = web.get("/dicomweb/instances").json()
        assert {dicomweb.first_value(i, "0020000D") for i in instances} == {shared}
        # what the viewer asks of the shared study works
        sop = dicomweb.first_value(instances[0], "00080018")
        series_uid = dicomweb.first_value(instances[0], "0020000E")
        assert (
            web.get(f"/dicomweb/studies/{shared}/series/{series_uid}/metadata").status_code == 200
        )
        frame = web.get(
            f"/dicomweb/studies/{shared}/series/{series_uid}/instances/{sop}/frames/1",
            headers={"Accept": f"{OCTETS}; transfer-syntax=*"},
        )
        assert frame.status_code == 200
        # a shared study under another study's path is still another study
        assert web.get(f"/dicomweb/studies/{other}/series/{series_uid}/metadata").status_code == 403
        # read-only, and nothing beyond DICOMweb and the viewer
        stow = web.post("/dicomweb/studies", content=b"x", headers={"Content-Type": DICOMS})
        assert stow.status_code in (401, 403)
        refused = ["/api/timeline?nhs_number=" + region.rita_nhs, "/api/shares", "/search"]
        refused += [f"/studies/{shared}", f"/studies/{shared}/download", "/api/audit"]
        refused += ["/shares", f"/shares/{share['id']}", "/shares/new?study=" + shared]
        for path in refused:
            assert web.get(path, follow_redirects=False).status_code == 403, path
        assert web.get(f"/share/studies/{shared}/download").status_code == 403  # not allowed


def test_what_a_recipient_reads_is_found_by_the_patients_nhs_number(
    api: httpx.Client, region: Region, portal: Portal
) -> None:
    share = create(api, region, studies=[region.rita_test_study], pin=True)
    shared, other = region.rita_test_study, region.rita_part_study
    with open_link(portal, share, share["pin_code"]) as web:
        assert web.get("/share").status_code == 200  # the list names the patient
        assert web.get(f"/dicomweb/studies/{shared}/metadata").status_code == 200
        assert web.get(f"/dicomweb/studies/{other}/metadata").status_code == 403
    admin = {"Authorization": f"Bearer {region.admin_token}"}
    params = {"nhs_number": region.rita_nhs, "user": f"share:{share['id']}"}
    with httpx.Client(base_url=portal.origin, headers=admin, timeout=60) as auditor:
        found = auditor.get("/api/audit", params=params)
    assert found.status_code == 200, found.text
    assert {(e["kind"], e["outcome"], e["study_uid"]) for e in found.json()} == {
        ("query", "success", shared),
        ("view", "success", shared),
        ("view", "refused", other),
    }


def test_download_when_the_sender_allows_it(
    api: httpx.Client, region: Region, portal: Portal
) -> None:
    share = create(api, region, studies=[region.rita_test_study], download=True)
    with open_link(portal, share, share["pin_code"]) as web:
        answer = web.get(f"/share/studies/{region.rita_test_study}/download")
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/zip"
        assert web.get(f"/share/studies/{region.gary_test_study}/download").status_code == 403


def test_a_pin_is_asked_and_five_wrong_ones_lock_the_share_and_tell_the_owner(
    api: httpx.Client, region: Region, portal: Portal, smtp: SmtpServer
) -> None:
    share = create(api, region, pin=True)
    alerts = len(smtp.mailbox.to(OWNER_EMAIL))
    with open_link(portal, share) as web:
        assert web.get("/dicomweb/studies").status_code == 401  # no PIN yet
        assert web.get("/share", follow_redirects=False).headers["location"] == "/share/pin"
        secret = web.cookies["rix_share"]
        for left in (4, 3, 2, 1):
            wrong = give_pin(web, "000000" if share["pin_code"] != "000000" else "111111")
            assert wrong.status_code == 403
            assert f"{left} tr" in wrong.text
        locked = give_pin(web, "999999" if share["pin_code"] != "999999" else "888888")
        assert locked.status_code == 423
        assert "rix_share" not in web.cookies  # the locked session's cookie is cleared
        # the right PIN now opens nothing, and says why as the link does: locked
        web.cookies.set("rix_share", secret)
        right = give_pin(web, share["pin_code"])
        assert right.status_code == 423, right.text
        assert "locked" in right.text
        web.cookies.set("rix_share", secret)
        assert web.get("/share/pin").status_code == 423  # whichever page is asked
    assert api.get(f"/api/shares/{share['id']}").json()["state"] == "locked"
    # a new opening of the link is refused too
    token = share["link"].split("#", 1)[1]
    with httpx.Client(base_url=portal.origin) as again:
        answer = again.post("/s", data={"token": token})
        assert answer.status_code == 423
        assert "locked" in answer.text
    alert = smtp.mailbox.wait_for(OWNER_EMAIL, count=alerts + 1)[-1]
    assert "locked" in alert["Subject"]
    uses = api.get(f"/api/shares/{share['id']}").json()["uses"]
    refused = [u for u in uses if u["kind"] == "login" and u["outcome"] == "refused"]
    assert [u["detail"]["via"] for u in refused].count("share-pin") == 5
    opening = [u for u in refused if u["detail"]["via"] == "share-link"]
    assert len(opening) == 1 and "locked" in opening[0]["detail"]["reason"]  # refused, on record


def test_a_share_has_a_pin_unless_its_trust_allows_one_without(
    api: httpx.Client, region: Region, portal: Portal
) -> None:
    made = create(api, region, studies=[region.rita_test_study])  # "pin" not given
    assert made["pin"] and len(made["pin_code"]) == 6 and made["pin_code"].isdigit()
    body = {
        "studies": [region.rita_test_study],
        "recipient_name": "Dr Wendy Who",
        "recipient_email": RECIPIENT,
        "pin": False,
    }
    refused = api.post("/api/shares", json=body)
    assert refused.status_code == 403, refused.text
    assert "requires a PIN" in refused.json()["error"]
    admin = {"Authorization": f"Bearer {region.admin_token}"}
    with httpx.Client(base_url=portal.origin, headers=admin, timeout=60) as trusts:
        allowed = trusts.patch("/api/trusts/TEST", json={"shares_without_pin": True})
    assert allowed.json() == {"code": "TEST", "shares_without_pin": True}, allowed.text
    try:
        opted_out = api.post("/api/shares", json=body)
        assert opted_out.status_code == 201, opted_out.text
        share = opted_out.json()
        assert (share["pin"], share["pin_code"]) == (False, "")
        with httpx.Client(base_url=portal.origin, headers=admin, timeout=60) as auditor:
            events = auditor.get("/api/audit", params={"user": "tester", "limit": 50}).json()
        made_as = [e["detail"] for e in events if e["detail"].get("share") == share["id"]]
        assert [d["pin"] for d in made_as] == [False]  # on record: a share with no PIN
    finally:
        restored = portal.server.rix("trust", "set", "TEST", "--shares-need-pin")
    assert "may not share" in restored.stdout
    assert api.post("/api/shares", json=body).status_code == 403


def test_the_right_pin_opens_the_share(api: httpx.Client, region: Region, portal: Portal) -> None:
    share = create(api, region, pin=True)
    with open_link(portal, share, pin=share["pin_code"]) as web:
        assert study_uids(web.get("/dicomweb/studies")) == {
            region.rita_test_study,
            region.rita_part_study,
        }
        page = web.get("/share")
        assert page.status_code == 200
        assert "Dr Wendy Who" in page.text and "metastasis" in page.text


def test_expiry_holds_to_the_second(api: httpx.Client, region: Region, portal: Portal) -> None:
    expires = time.time() + 4.0
    share = create(api, region, days=None, expires_at=expires)
    with open_link(portal, share, share["pin_code"]) as web:
        time.sleep(max(0.0, expires - 1.5 - time.time()))
        assert study_uids(web.get("/dicomweb/studies")) != set()
        time.sleep(max(0.0, expires + 0.05 - time.time()))
        assert web.get("/dicomweb/studies").status_code == 401
        assert web.get("/share").status_code == 401
    token = share["link"].split("#", 1)[1]
    with httpx.Client(base_url=portal.origin) as late:
        answer = late.post("/s", data={"token": token})
        assert answer.status_code == 410
        assert "expired" in answer.text


def test_revocation_stops_a_session_already_open(
    api: httpx.Client, region: Region, portal: Portal
) -> None:
    share = create(api, region)
    with open_link(portal, share, share["pin_code"]) as web:
        uid = region.rita_test_study
        assert web.get(f"/dicomweb/studies/{uid}/metadata").status_code == 200
        assert api.post(f"/api/shares/{share['id']}/revoke").status_code == 200
        assert web.get(f"/dicomweb/studies/{uid}/metadata").status_code == 401
        assert web.get("/viewer/", follow_redirects=False).status_code in (303, 401)
    token = share["link"].split("#", 1)[1]
    with httpx.Client(base_url=portal.origin) as again:
        answer = again.post("/s", data={"token": token})
        assert answer.status_code == 410
        assert "withdrawn" in answer.text


def test_a_share_holds_visible_studies_of_one_patient_for_at_most_30_days(
    api: httpx.Client, region: Region
) -> None:
    base = {"recipient_name": "Dr X", "recipient_email": RECIPIENT, "days": 7}
    hidden = api.post("/api/shares", json={**base, "studies": [region.hidden_study]})
    assert hidden.status_code == 403
    two = api.post(
        "/api/shares", json={**base, "studies": [region.rita_test_study, region.gary_test_study]}
    )
    assert two.status_code == 409
    long = api.post("/api/shares", json={**base, "days": 31, "studies": [region.rita_test_study]})
    assert long.status_code == 409
    bad = api.post(
        "/api/shares",
        json={
            **base,
            "recipient_email": "a@b.c\r\nBcc: x@y.z",
            "studies": [region.rita_test_study],
        },
    )
    assert bad.status_code == 409


def test_shares_are_seen_by_their_owner_and_admins_only(
    api: httpx.Client, region: Region, portal: Portal
) -> None:
    share = create(api, region)
    with open_link(portal, share, share["pin_code"]) as web:
        web.get(f"/dicomweb/studies/{region.rita_test_study}/metadata")
    portal.server.add_user("other.clinician", "clinician", trust="TEST")
    other = portal.server.create_token("other.clinician")
    with httpx.Client(base_url=portal.origin, headers={"Authorization": f"Bearer {other}"}) as c:
        assert c.get(f"/api/shares/{share['id']}").status_code == 403
        assert c.post(f"/api/shares/{share['id']}/revoke").status_code == 403
        assert share["id"] not in {s["id"] for s in c.get("/api/shares").json()}
    admin = {"Authorization": f"Bearer {region.admin_token}"}
    with httpx.Client(base_url=portal.origin, headers=admin) as c:
        seen = c.get(f"/api/shares/{share['id']}").json()
    kinds = {(u["kind"], u["outcome"]) for u in seen["uses"]}
    assert ("login", "success") in kinds and ("view", "success") in kinds
    assert all(u["source"] == "127.0.0.1" for u in seen["uses"])


def test_the_token_is_stored_only_as_a_hash_and_is_in_no_log_or_audit(
    api: httpx.Client, region: Region, portal: Portal
) -> None:
    share = create(api, region, pin=True)
    token = share["link"].split("#", 1)[1]
    with open_link(portal, share, pin=share["pin_code"]) as web:
        web.get("/dicomweb/studies")
        session_secret = web.cookies["rix_share"]
    with httpx.Client(base_url=portal.origin) as wrong:
        wrong.post("/s", data={"token": token + "x"})  # a failed opening is logged too
    admin = {"Authorization": f"Bearer {region.admin_token}"}
    with httpx.Client(base_url=portal.origin, headers=admin) as c:
        c.get("/api/audit", params={"limit": 10})  # flushes the queued audit events
    data = portal.server.data
    with sqlite3.connect(data / "index.sqlite") as db:
        dump = "\n".join(db.iterdump())
        hashes = [r[0] for r in db.execute("SELECT token_hash FROM shares")]
    assert hashlib.sha256(token.encode()).hexdigest() in hashes
    for secret in (token, session_secret, share["pin_code"] * 2):
        assert secret not in dump
    assert portal.server.log_path is not None
    log = portal.server.log_path.read_text(errors="replace")
    assert token not in log and session_secret not in log
