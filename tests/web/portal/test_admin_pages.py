"""The administration and status pages over plain HTTP (no browser: the forms are plain
HTML forms), against a real `rix serve`: each change goes through the form as a browser
would post it, with the page's CSRF token, and shows in the page's list; who may do what
is rix.region.admin's decision, shown as a 403 page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid
from sqlalchemy import update

from rix.index import database
from rix.index.schema import jobs
from rix.jobs import queue
from rix.region import trusts
from rix.web.portal.status import size_text
from tests.peers import dicomweb, images
from tests.peers.server import RixServer

PASSWORD = "correct horse battery staple"
REGION_ADMIN = "region.admin"
TRUST_ADMIN = "test.admin"
CLINICIAN = "test.clinician"
OTHER_USER = "other.clinician"
STORED = 3  # instances of one study of one patient, stored by TEST's API user
DEAD_ERROR = "association rejected by <b>PACS</b>"
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


@dataclass(frozen=True, slots=True, kw_only=True)
class Region:
    server: RixServer
    origin: str
    bytes_stored: int


def _dead_job(server: RixServer) -> None:
    """A delivery of trust TEST given up, as a worker leaves one (written directly: the
    server runs no workers, so nothing here claims it)."""
    engine = database.connect(f"sqlite:///{(server.data / 'index.sqlite').resolve()}")
    try:
        with database.begin_write(engine) as conn:
            trust_pk = trusts.get_trust(conn, "TEST").pk
            pk = queue.enqueue(conn, "deliver", {}, label="send to TEST PACS", trust_pk=trust_pk)
            conn.execute(
                update(jobs)
                .where(jobs.c.id == pk)
                .values(state="dead", attempts=9, last_error=DEAD_ERROR, key=None)
            )
    finally:
        engine.dispose()


def _invalid_nhs_number(ds: Dataset) -> Dataset:
    """An NHS number whose check digit is wrong: the MPI opens a review for it."""
    other = Dataset()
    other.PatientID = "9434765918"
    other.IssuerOfPatientID = "NHS"
    ds.OtherPatientIDsSequence = Sequence([other])
    return ds


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Region]:
    data = tmp_path_factory.mktemp("admin-pages") / "data"
    # no job workers: the stored study's stability job stays pending for the jobs page
    server = RixServer(data=data, extra_env={"RIX_WORKERS": "0"}).start()
    try:
        stower = server.auth  # makes trust TEST and its API user
        server.add_trust("OTHER", "Other Trust")
        server.add_user(REGION_ADMIN, "region-admin", password=PASSWORD)
        server.add_user(TRUST_ADMIN, "trust-admin", trust="TEST", password=PASSWORD)
        server.add_user(CLINICIAN, "clinician", trust="TEST", password=PASSWORD)
        server.add_user(OTHER_USER, "clinician", trust="OTHER", password=PASSWORD)
        study, series = generate_uid(), generate_uid()
        files = [
            dicomweb.part10(
                _invalid_nhs_number(
                    images.ct(
                        patient_id="ADMIN-1",
                        name="Admin^Ada",
                        study_uid=study,
                        series_uid=series,
                        number=n,
                    )
                )
            )
            for n in range(1, STORED + 1)
        ]
        origin = f"http://127.0.0.1:{server.http_port}"
        with httpx.Client(base_url=origin + "/dicomweb", headers=stower, timeout=60) as c:
            assert dicomweb.stow(c, files).status_code == 200
        _dead_job(server)
        stored = sum(p.stat().st_size for p in (server.data / "objects").rglob("*") if p.is_file())
        yield Region(server=server, origin=origin, bytes_stored=stored)
    finally:
        server.stop(wait=False)


def sign_in(region: Region, username: str) -> httpx.Client:
    client = httpx.Client(base_url=region.origin, timeout=30)
    answer = client.post("/login", data={"username": username, "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    return client


@pytest.fixture(scope="module")
def region_admin(region: Region) -> Iterator[httpx.Client]:
    client = sign_in(region, REGION_ADMIN)
    yield client
    client.close()


@pytest.fixture(scope="module")
def trust_admin(region: Region) -> Iterator[httpx.Client]:
    client = sign_in(region, TRUST_ADMIN)
    yield client
    client.close()


@pytest.fixture(scope="module")
def clinician(region: Region) -> Iterator[httpx.Client]:
    client = sign_in(region, CLINICIAN)
    yield client
    client.close()


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def submit(client: httpx.Client, page: str, action: str, form: dict[str, str]) -> httpx.Response:
    """Post ``form`` to ``action`` as the page at ``page`` would, with its CSRF token."""
    shown = client.get(page)
    assert shown.status_code == 200, shown.text
    return client.post(action, data={**form, "csrf": csrf_of(shown.text)})


def submitted(client: httpx.Client, page: str, action: str, form: dict[str, str]) -> str:
    """Post a change that must succeed; the page it leads back to."""
    answer = submit(client, page, action, form)
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.startswith(page + "?done=")
    back = client.get(location)
    assert back.status_code == 200
    assert 'role="status"' in back.text  # the confirmation
    return back.text


def figure(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}">([^<]*)<', html)
    assert found, f"no {element_id} on the page"
    return found.group(1)


def test_region_admin_adds_a_trust_site_ae_user_and_agreement_and_sees_them_listed(
    region_admin: httpx.Client,
) -> None:
    page = submitted(
        region_admin,
        "/admin/trusts",
        "/admin/trusts",
        {"code": "NRTH", "name": "Northern Hospitals", "issuer": "NRTH-MRN", "pacs": "NPACS"},
    )
    assert "Northern Hospitals" in page and "NRTH-MRN" in page and "NPACS" in page
    page = submitted(
        region_admin,
        "/admin/trusts",
        "/admin/trusts/sites",
        {"trust": "NRTH", "site_code": "GEN", "site_name": "General Infirmary"},
    )
    assert "General Infirmary" in page
    page = submitted(
        region_admin,
        "/admin/aes",
        "/admin/aes",
        {
            "title": "NRTH_CT1",
            "host": "10.1.2.3",
            "port": "11112",
            "trust": "NRTH",
            "description": "Main CT",
        },
    )
    assert "NRTH_CT1" in page and "10.1.2.3" in page and "11112" in page and "Main CT" in page
    page = submitted(
        region_admin,
        "/admin/users",
        "/admin/users",
        {
            "username": "nrth.rad",
            "display_name": "Nora Radley",
            "email": "nora.radley@nrth.nhs.example",
            "trust": "NRTH",
            "role-radiologist": "on",
            "password": "a long enough password",
        },
    )
    assert "nrth.rad" in page and "Nora Radley" in page and "radiologist" in page
    assert "nora.radley@nrth.nhs.example" in page  # where rix alerts her
    assert "a long enough password" not in page
    page = submitted(
        region_admin,
        "/admin/agreements",
        "/admin/agreements",
        {"trust": "NRTH", "other": "TEST", "description": "Northern imaging network"},
    )
    assert "TEST and NRTH" in page and "Northern imaging network" in page  # trusts by age


def test_new_user_signs_in_with_the_password_set_on_the_form(
    region: Region, region_admin: httpx.Client
) -> None:
    submitted(
        region_admin,
        "/admin/users",
        "/admin/users",
        {"username": "form.made", "trust": "TEST", "role-clinician": "on", "password": PASSWORD},
    )
    client = sign_in(region, "form.made")
    assert client.get("/search").status_code == 200
    client.close()


def test_region_admin_ends_an_agreement(region_admin: httpx.Client) -> None:
    both = {"trust": "TEST", "other": "OTHER"}
    page = submitted(region_admin, "/admin/agreements", "/admin/agreements", both)
    assert "TEST and OTHER" in page
    page = submitted(region_admin, "/admin/agreements", "/admin/agreements/end", both)
    assert "TEST and OTHER" not in page


def test_region_admin_removes_an_ae(region_admin: httpx.Client) -> None:
    peer = {"title": "GONE", "host": "h.example", "port": "104"}
    assert ">GONE<" in submitted(region_admin, "/admin/aes", "/admin/aes", peer)
    page = submitted(region_admin, "/admin/aes", "/admin/aes/remove", {"title": "GONE"})
    assert ">GONE<" not in page


def test_trust_admin_sees_only_their_trusts_users(trust_admin: httpx.Client) -> None:
    page = trust_admin.get("/admin/users")
    assert page.status_code == 200
    assert CLINICIAN in page.text and TRUST_ADMIN in page.text
    assert OTHER_USER not in page.text and REGION_ADMIN not in page.text
    assert 'value="region-admin"' not in page.text and 'name="role-region-admin"' not in page.text


def test_trust_admin_cannot_add_a_trust(trust_admin: httpx.Client) -> None:
    shown = trust_admin.get("/admin/trusts")
    assert 'action="/admin/trusts"' not in shown.text  # the form is hidden...
    answer = submit(
        trust_admin, "/admin/trusts", "/admin/trusts", {"code": "ROGUE", "name": "Rogue Trust"}
    )
    assert answer.status_code == 403  # ...and the change refused
    assert "region-admin" in answer.text
    assert "ROGUE" not in trust_admin.get("/admin/trusts").text.replace('value="ROGUE"', "")


def test_trust_admin_adds_a_site_to_their_own_trust_only(trust_admin: httpx.Client) -> None:
    page = submitted(
        trust_admin,
        "/admin/trusts",
        "/admin/trusts/sites",
        {"trust": "TEST", "site_code": "ANNEX", "site_name": "Test Annex"},
    )
    assert "Test Annex" in page
    assert '<option value="OTHER"' not in page
    answer = submit(
        trust_admin,
        "/admin/trusts",
        "/admin/trusts/sites",
        {"trust": "OTHER", "site_code": "X", "site_name": "Not theirs"},
    )
    assert answer.status_code == 403


def test_confirmation_is_a_code_never_echoed(region_admin: httpx.Client) -> None:
    page = region_admin.get("/admin/trusts", params={"done": "<script>alert(3)</script>"})
    assert page.status_code == 200
    assert "alert(3)" not in page.text and 'role="status"' not in page.text


def test_trust_admin_cannot_add_a_user_to_another_trust(trust_admin: httpx.Client) -> None:
    answer = submit(
        trust_admin,
        "/admin/users",
        "/admin/users",
        {"username": "sneaky", "trust": "OTHER", "role-clinician": "on"},
    )
    assert answer.status_code == 403
    assert ">sneaky<" not in trust_admin.get("/admin/users").text


def test_trust_admin_is_refused_the_mpi_reviews(trust_admin: httpx.Client) -> None:
    assert trust_admin.get("/admin/mpi").status_code == 403
    assert 'href="/admin/mpi"' not in trust_admin.get("/admin").text


@pytest.mark.parametrize(
    "path", ["/admin", "/admin/trusts", "/admin/users", "/admin/aes", "/admin/jobs", "/status"]
)
def test_clinician_is_refused_administration_and_status(clinician: httpx.Client, path: str) -> None:
    answer = clinician.get(path)
    assert answer.status_code == 403
    assert "<h1>Not shared with you</h1>" in answer.text


def test_clinician_cannot_post_a_change(clinician: httpx.Client) -> None:
    answer = submit(clinician, "/search", "/admin/trusts", {"code": "CLIN", "name": "Clinician's"})
    assert answer.status_code == 403


def test_signed_out_browser_is_sent_to_sign_in(region: Region) -> None:
    answer = httpx.get(region.origin + "/admin/users")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fadmin%2Fusers"


def test_post_without_csrf_field_is_refused_and_changes_nothing(
    region_admin: httpx.Client,
) -> None:
    answer = region_admin.post("/admin/trusts", data={"code": "NOCSRF", "name": "Forged"})
    assert answer.status_code == 403
    wrong = region_admin.post(
        "/admin/trusts", data={"code": "NOCSRF", "name": "Forged", "csrf": "0" * 64}
    )
    assert wrong.status_code == 403
    assert "NOCSRF" not in region_admin.get("/admin/trusts").text


def test_invalid_input_shows_the_form_again_with_the_reason(region_admin: httpx.Client) -> None:
    answer = submit(
        region_admin,
        "/admin/aes",
        "/admin/aes",
        {"title": "BADPORT", "host": "pacs.example", "port": "eleventy", "description": "x"},
    )
    assert answer.status_code == 409
    assert 'role="alert"' in answer.text and "port" in answer.text
    assert 'value="pacs.example"' in answer.text  # what was typed is kept
    assert ">BADPORT<" not in region_admin.get("/admin/aes").text


def test_hostile_text_is_shown_as_text(region_admin: httpx.Client) -> None:
    script = "<script>alert(1)</script>"
    page = submitted(
        region_admin, "/admin/trusts", "/admin/trusts", {"code": "HOST", "name": script}
    )
    assert script not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    markup = '<img src=x onerror="alert(2)"><b>bold</b>'
    page = submitted(
        region_admin,
        "/admin/aes",
        "/admin/aes",
        {"title": "HOSTILE", "host": "h.example", "port": "104", "description": markup},
    )
    assert markup not in page and "<b>bold</b>" not in page
    assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;&lt;b&gt;bold&lt;/b&gt;" in page


def test_region_admin_dismisses_an_mpi_review(region_admin: httpx.Client) -> None:
    page = region_admin.get("/admin/mpi")
    assert page.status_code == 200
    assert "invalid-nhs-number" in page.text
    review = re.search(r'name="review" value="(\d+)"', page.text)
    assert review
    after = submitted(region_admin, "/admin/mpi", "/admin/mpi/dismiss", {"review": review.group(1)})
    assert f'name="review" value="{review.group(1)}"' not in after


def job_state(page: str, pk: str) -> str:
    found = re.search(rf">{pk}</th>\s*<td>[^<]*</td>\s*<td>([a-z]+)<", page)
    assert found, f"job {pk} is not listed"
    return found.group(1)


def test_jobs_page_cancels_and_retries_a_job(region_admin: httpx.Client) -> None:
    page = region_admin.get("/admin/jobs")
    assert page.status_code == 200
    job = re.search(
        r'name="job" value="(\d+)"[^<]*<button type="submit" class="danger">', page.text
    )
    assert job, "the stored study's stability job is pending"
    pk = job.group(1)
    after = submitted(region_admin, "/admin/jobs", "/admin/jobs/cancel", {"job": pk})
    assert job_state(after, pk) == "cancelled"
    after = submitted(region_admin, "/admin/jobs", "/admin/jobs/retry", {"job": pk})
    assert job_state(after, pk) == "pending"


def test_trust_admin_sees_only_their_trusts_jobs(trust_admin: httpx.Client) -> None:
    page = trust_admin.get("/admin/jobs")
    assert page.status_code == 200
    assert "send to TEST PACS" in page.text
    assert "stable: apply routing rules" not in page.text  # the region's, not TEST's
    dead = trust_admin.get("/admin/jobs", params={"state": "dead"}).text
    assert "send to TEST PACS" in dead and 'name="job"' in dead


def test_status_shows_what_was_stored_and_a_chart(
    region: Region, region_admin: httpx.Client
) -> None:
    page = region_admin.get("/status")
    assert page.status_code == 200
    assert figure(page.text, "count-instances") == str(STORED)
    assert figure(page.text, "count-studies") == "1"
    assert figure(page.text, "count-patients") == "1"
    assert figure(page.text, "storage-used") == size_text(region.bytes_stored)
    assert "storage-free" in page.text
    chart = re.search(r"<svg .*?</svg>", page.text, re.S)
    assert chart
    bars = re.findall(r'<rect class="bar"[^>]*height="(\d+)"', chart.group(0))
    assert len(bars) == 24
    assert int(bars[-1]) > 0  # stored this hour
    assert "style=" not in page.text and "<script>" not in page.text


def test_status_lists_refused_sign_ins(region: Region, region_admin: httpx.Client) -> None:
    with httpx.Client(base_url=region.origin) as stranger:
        refused = stranger.post("/login", data={"username": "mallory", "password": "guess"})
        assert refused.status_code == 401
    page = region_admin.get("/status").text
    assert re.search(r"<td>login</td>\s*<td>refused</td>\s*<td>mallory", page)


def test_trust_admin_status_counts_their_trust_only(trust_admin: httpx.Client) -> None:
    page = trust_admin.get("/status")
    assert page.status_code == 200
    assert figure(page.text, "count-instances") == str(STORED)  # all stored were TEST's
    assert "mallory" not in page.text  # no trust: a region administrator's to follow up


def test_status_highlights_dead_jobs_with_their_error(region_admin: httpx.Client) -> None:
    page = region_admin.get("/status").text
    assert figure(page, "jobs-dead") == "1"
    assert re.search(r'<div class="alarm"><dt>Dead', page)
    assert "association rejected by &lt;b&gt;PACS&lt;/b&gt;" in page
    assert DEAD_ERROR not in page


def test_status_page_is_itself_audited(region_admin: httpx.Client) -> None:
    region_admin.get("/status")
    events = region_admin.get("/api/audit", params={"user": REGION_ADMIN})
    assert events.status_code == 200, events.text
    assert any("status_page" in e["detail"] for e in events.json())
