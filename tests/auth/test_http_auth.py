"""Who may ask: HTTP authentication and DICOM user identity, against a live server.

HTTP: every route but the deliberately public ones answers 401 without credentials, with
WWW-Authenticate (RFC 9110 11.6.1, RFC 6750 3); credentials are an API token or an OpenID
Connect JWT as a Bearer token (RFC 6750 2.1), or the login page's session cookie. DICOM: a
workstation names its user by User Identity Negotiation (PS3.7 D.3.3.7): type 2 user
name and passcode (a password or an API token) or type 5 a JWT; a wrong identity rejects
the association. The server trusts tests/peers/oidc.py's identity provider on loopback.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from pydicom.uid import generate_uid
from pynetdicom import build_context
from pynetdicom.association import Association
from pynetdicom.pdu_primitives import UserIdentityNegotiation

from rix.web import csrf
from tests.conftest import new_server
from tests.peers import dicomweb, postgres, scu
from tests.peers.oidc import IdentityProvider, SigningKey
from tests.peers.server import ROOT, RixServer, free_port
from tests.peers.synthetic import ct_slice

PASSWORD = "correct horse battery staple"
PATIENT_ID = "AUTH-1"
# Public by design: the health probe, the sign-in page, and signing out (which must work
# when the session has already expired).
PUBLIC = {("GET", "/healthz"), ("GET", "/login"), ("POST", "/login"), ("POST", "/logout")}
PLACEHOLDERS = {
    "study": "1.2.826.0.1.3680043.8.498.1",
    "series": "1.2.826.0.1.3680043.8.498.2",
    "sop": "1.2.826.0.1.3680043.8.498.3",
    "frame_list": "1",
    "frame": "1",
    "path": "7FE00010",
    "code": "TEST",
    "trust": "TEST",
    "other": "OTHER",
    "username": "tester",
    "title": "SOMEAE",
    "review_id": "1",
    "job_id": "1",
    "upload_id": "0123456789abcdef0123456789abcdef",
    "number": "0",
    "order_id": "1",
    "share_id": "1",
    "shift_id": "1",
}
USERNAME_AND_PASSCODE, JWT = 2, 5  # PS3.7 Table D.3-14 User-Identity-Type


@dataclass(frozen=True, slots=True, kw_only=True)
class Site:
    """A server of the module's own: trust TEST; ``tester`` (clinician, with a password
    and an API token) who stored one study; ``alice``, the identity provider's user."""

    server: RixServer
    origin: str
    token: str  # tester's
    alice_token: str
    study_uid: str
    root_token: str  # a region administrator's

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.origin, timeout=30, **kwargs)


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    with IdentityProvider([SigningKey.generate_rsa()]).running() as provider:
        yield provider


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, backend: str, idp: IdentityProvider
) -> Iterator[Site]:
    url = postgres.create_database(migrated=True) if backend == "postgresql" else ""
    oidc = {
        "RIX_OIDC_ISSUER": idp.issuer,
        "RIX_OIDC_AUDIENCE": idp.audience,
        "RIX_OIDC_JWKS_URL": idp.jwks_url,
    }
    server = new_server(tmp_path_factory.mktemp("auth"), database_url=url, extra_env=oidc)
    origin = f"http://127.0.0.1:{server.http_port}"
    try:
        server.start()
        server.add_user("root", "region-admin")
        root = server.create_token("root")
        with httpx.Client(base_url=origin, headers=bearer(root), timeout=30) as admin:
            assert admin.post("/api/trusts", json={"code": "TEST", "name": "Test"}).is_success
            for username in ("tester", "alice"):
                user = {
                    "username": username,
                    "roles": ["clinician"],
                    "trust": "TEST",
                    "password": PASSWORD,
                }
                assert admin.post("/api/users", json=user).is_success
            tokens = {
                name: admin.post(f"/api/users/{name}/tokens", json={}).json()["token"]
                for name in ("tester", "alice")
            }
        ds = ct_slice(
            patient_id=PATIENT_ID,
            patient_name="Auth^Patient",
            study_uid=generate_uid(),
            series_uid=generate_uid(),
            number=1,
            size=8,
        )
        with httpx.Client(base_url=origin + "/dicomweb", headers=bearer(tokens["tester"])) as c:
            assert dicomweb.stow(c, [dicomweb.part10(ds)]).status_code == 200
        yield Site(
            server=server,
            origin=origin,
            token=tokens["tester"],
            alice_token=tokens["alice"],
            study_uid=ds.StudyInstanceUID,
            root_token=root,
        )
    finally:
        server.stop(wait=False)
        if url:
            postgres.drop_database(url)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_unauthenticated(answer: httpx.Response) -> None:
    assert answer.status_code == 401, f"{answer.request.url}: {answer.status_code}"
    assert answer.headers.get("www-authenticate", "").startswith("Bearer"), answer.headers


# --- every route needs credentials ---


def operations(site: Site) -> list[tuple[str, str]]:
    """(method, path) of every operation in the OpenAPI document (read signed in)."""
    with site.client(headers=bearer(site.token)) as signed_in:
        document = signed_in.get("/openapi.json").json()
    return [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "patch")
    ]


def test_openapi_document_needs_credentials(site: Site) -> None:
    with site.client() as anonymous:
        assert_unauthenticated(anonymous.get("/openapi.json"))
        assert_unauthenticated(anonymous.get("/docs"))


def test_only_the_health_probe_and_signing_in_and_out_are_public(site: Site) -> None:
    assert {op for op in operations(site) if op[1] in ("/healthz", "/login", "/logout")} == PUBLIC


def test_every_other_route_answers_401_with_www_authenticate(site: Site) -> None:
    failures = []
    with site.client() as anonymous:
        for method, path in operations(site):
            if (method, path) in PUBLIC:
                continue
            url = re.sub(r"\{(\w+)\}", lambda m: PLACEHOLDERS[m.group(1)], path)
            answer = anonymous.request(method, url)
            challenge = answer.headers.get("www-authenticate", "")
            if answer.status_code != 401 or not challenge.startswith("Bearer"):
                failures.append(f"{method} {url}: {answer.status_code} {challenge!r}")
    assert failures == []


def test_malformed_uid_in_the_path_is_still_401_before_anything_else(site: Site) -> None:
    with site.client() as anonymous:
        assert_unauthenticated(anonymous.get("/dicomweb/studies/not..a..uid/metadata"))


def test_study_of_the_archive_is_401_without_credentials(site: Site) -> None:
    """Not 404 or 403: nothing about what exists is told to someone unknown."""
    with site.client() as anonymous:
        assert_unauthenticated(anonymous.get(f"/dicomweb/studies/{site.study_uid}"))


# --- API tokens ---


def test_api_token_opens_dicomweb(site: Site) -> None:
    with site.client(headers=bearer(site.token)) as c:
        answer = c.get("/dicomweb/studies", params={"PatientID": PATIENT_ID})
    assert answer.status_code == 200
    assert len(answer.json()) == 1


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param("Bearer rix_" + "A" * 43, id="unknown-token"),
        pytest.param("Bearer garbage", id="garbage"),
        pytest.param("Bearer", id="scheme-alone"),
        pytest.param("Basic dGVzdGVyOmNvcnJlY3QgaG9yc2UgYmF0dGVyeSBzdGFwbGU=", id="basic"),
        pytest.param("rix_" + "A" * 43, id="no-scheme"),
    ],
)
def test_garbage_credentials_are_401(site: Site, authorization: str) -> None:
    with site.client(headers={"Authorization": authorization}) as c:
        assert_unauthenticated(c.get("/dicomweb/studies"))


def test_expired_api_token_is_401(site: Site) -> None:
    with site.client(headers=bearer(site.token)) as c:
        brief = {"label": "brief", "days": 0.1 / 86400}  # a tenth of a second
        answer = c.post("/api/users/tester/tokens", json=brief)
    assert answer.status_code == 201
    time.sleep(0.2)
    with site.client(headers=bearer(answer.json()["token"])) as c:
        assert_unauthenticated(c.get("/dicomweb/studies"))


def test_revoked_api_token_is_401_at_once(site: Site) -> None:
    with site.client(headers=bearer(site.root_token)) as admin:
        user = {"username": "revokee", "roles": ["clinician"], "trust": "TEST"}
        assert admin.post("/api/users", json=user).status_code == 201
        token = admin.post("/api/users/revokee/tokens", json={}).json()["token"]
        with site.client(headers=bearer(token)) as c:
            assert c.get("/dicomweb/studies").status_code == 200
            assert admin.delete("/api/users/revokee/tokens").json() == {"revoked": 1}
            assert_unauthenticated(c.get("/dicomweb/studies"))


def test_a_disabled_users_token_is_401_at_once(site: Site) -> None:
    with site.client(headers=bearer(site.root_token)) as admin:
        user = {"username": "leaver", "roles": ["clinician"], "trust": "TEST"}
        assert admin.post("/api/users", json=user).status_code == 201
        token = admin.post("/api/users/leaver/tokens", json={}).json()["token"]
        with site.client(headers=bearer(token)) as c:
            assert c.get("/dicomweb/studies").status_code == 200
            assert admin.post("/api/users/leaver/disable").status_code == 200
            assert_unauthenticated(c.get("/dicomweb/studies"))


# --- the login page and its session cookie ---


def sign_in(c: httpx.Client, password: str = PASSWORD, **form: str) -> httpx.Response:
    return c.post("/login", data={"username": "tester", "password": password, **form})


def test_login_page_is_html_without_credentials(site: Site) -> None:
    with site.client() as anonymous:
        answer = anonymous.get("/login")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert '<form class="panel" method="post" action="/login">' in answer.text


@pytest.mark.parametrize(
    ("username", "password"), [("tester", "wrong password"), ("nobody", PASSWORD)]
)
def test_sign_in_with_a_wrong_password_or_user_is_401_without_a_cookie(
    site: Site, username: str, password: str
) -> None:
    with site.client() as anonymous:
        answer = anonymous.post("/login", data={"username": username, "password": password})
    assert answer.status_code == 401
    assert "set-cookie" not in answer.headers
    assert "not recognised" in answer.text


def test_sign_in_sets_an_http_only_session_cookie_that_opens_dicomweb(site: Site) -> None:
    with site.client() as browser:
        answer = sign_in(browser, next="/dicomweb/studies")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/dicomweb/studies"
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith("rix_session=rix_")
        assert {"httponly", "samesite=lax", "path=/"} <= {
            part.strip().lower() for part in cookie.split(";")
        }
        assert browser.get("/dicomweb/studies").status_code == 200


def test_sign_out_ends_the_session(site: Site) -> None:
    with site.client() as browser:
        sign_in(browser)
        session = browser.cookies["rix_session"]
        # the sign-out form carries the session's CSRF token (rix.web.csrf)
        assert browser.post("/logout").status_code == 403
        answer = browser.post("/logout", data={"csrf": csrf.token_for(session)})
        assert (answer.status_code, answer.headers["location"]) == (303, "/login")
        assert "rix_session" not in browser.cookies
    with site.client(cookies={"rix_session": session}) as replay:
        assert_unauthenticated(replay.get("/dicomweb/studies"))


def browser_target(origin: str, location: str) -> str:
    """Where a browser goes for ``location``: the WHATWG URL parser drops tabs and
    newlines and reads a backslash as a slash in http(s) URLs."""
    cleaned = re.sub(r"[\t\r\n]", "", location).replace("\\", "/")
    return urljoin(origin + "/", cleaned)


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "\\\\evil.example/",
        "/\t/evil.example/",
        "http:evil.example",
        "javascript:alert(1)",
    ],
)
def test_next_cannot_send_the_browser_off_site(site: Site, target: str) -> None:
    with site.client() as browser:
        answer = sign_in(browser, next=target)
        assert answer.status_code == 303
        landing = browser_target(site.origin, answer.headers["location"])
        assert urlsplit(landing).netloc == urlsplit(site.origin).netloc, landing


# --- OpenID Connect bearer tokens ---


def test_oidc_token_of_a_rix_user_is_that_user(site: Site, idp: IdentityProvider) -> None:
    with site.client(headers=bearer(idp.mint())) as c:
        answer = c.get("/api/me")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"name": "alice", "trust": "TEST", "roles": ["clinician"]}


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"exp": -120}, id="expired"),
        pytest.param({"iss": "https://elsewhere.example/realms/rix"}, id="other-issuer"),
        pytest.param({"aud": "pacs"}, id="other-audience"),
        pytest.param({"preferred_username": "mallory"}, id="not-a-rix-user"),
    ],
)
def test_oidc_token_that_does_not_verify_is_401(
    site: Site, idp: IdentityProvider, claims: dict[str, Any]
) -> None:
    if "exp" in claims:
        claims = {"exp": int(time.time()) + claims["exp"]}
    with site.client(headers=bearer(idp.mint(**claims))) as c:
        assert_unauthenticated(c.get("/api/me"))


def test_oidc_token_signed_by_an_unpublished_key_is_401(site: Site, idp: IdentityProvider) -> None:
    with site.client(headers=bearer(idp.mint(key=SigningKey.generate_rsa()))) as c:
        assert_unauthenticated(c.get("/api/me"))


# --- DICOM user identity (PS3.7 D.3.3.7) ---


def identity(kind: int, primary: str, secondary: str = "") -> UserIdentityNegotiation:
    item = UserIdentityNegotiation()
    item.user_identity_type = kind
    item.primary_field = primary.encode()
    if secondary:
        item.secondary_field = secondary.encode()
    item.positive_response_requested = False
    return item


@contextmanager
def workstation(
    site: Site, user: UserIdentityNegotiation | None, abstract: str = scu.STUDY_ROOT_FIND
) -> Iterator[Association]:
    """An association from an unregistered workstation (loopback, ``accept_any_ae``)."""
    ae = scu.new_ae("WORKSTATION")
    with ExitStack() as stack:
        stack.callback(ae.shutdown)
        assoc = ae.associate(
            scu.HOST,
            site.server.dicom_port,
            [build_context(abstract)],
            ae_title="RIX",
            ext_neg=[] if user is None else [user],
        )
        stack.callback(lambda: assoc.release() if assoc.is_established else None)
        yield assoc


def studies_found(assoc: Association) -> list[str]:
    query = scu.query("STUDY", PatientID=PATIENT_ID, StudyInstanceUID="")
    found = []
    for status, match in assoc.send_c_find(query, scu.STUDY_ROOT_FIND):
        if status.Status in (0xFF00, 0xFF01) and match is not None:
            found.append(str(match.StudyInstanceUID))
    return found


def test_workstation_without_user_identity_sees_no_trusts_studies(site: Site) -> None:
    with workstation(site, None) as assoc:
        assert assoc.is_established
        assert studies_found(assoc) == []


def test_user_name_and_password_make_the_association_that_user(site: Site) -> None:
    with workstation(site, identity(USERNAME_AND_PASSCODE, "tester", PASSWORD)) as assoc:
        assert assoc.is_established
        assert studies_found(assoc) == [site.study_uid]


def test_user_name_and_api_token_make_the_association_that_user(site: Site) -> None:
    with workstation(site, identity(USERNAME_AND_PASSCODE, "tester", site.token)) as assoc:
        assert assoc.is_established
        assert studies_found(assoc) == [site.study_uid]


def test_oidc_jwt_makes_the_association_its_user(site: Site, idp: IdentityProvider) -> None:
    with workstation(site, identity(JWT, idp.mint())) as assoc:
        assert assoc.is_established
        assert studies_found(assoc) == [site.study_uid]


@pytest.mark.parametrize(
    ("kind", "primary", "secondary"),
    [
        pytest.param(USERNAME_AND_PASSCODE, "tester", "wrong password", id="wrong-password"),
        pytest.param(USERNAME_AND_PASSCODE, "nobody", PASSWORD, id="unknown-user"),
        pytest.param(USERNAME_AND_PASSCODE, "tester", "rix_" + "A" * 43, id="unknown-token"),
        pytest.param(1, "tester", "", id="user-name-alone"),
    ],
)
def test_wrong_user_identity_rejects_the_association(
    site: Site, kind: int, primary: str, secondary: str
) -> None:
    with workstation(site, identity(kind, primary, secondary)) as assoc:
        assert assoc.is_rejected


def test_a_user_without_a_clinical_role_cannot_c_store_as_themselves(site: Site) -> None:
    with site.client(headers=bearer(site.root_token)) as admin:
        user = {"username": "watcher", "roles": ["auditor"], "password": PASSWORD}
        assert admin.post("/api/users", json=user).status_code == 201
    ds = ct_slice(
        patient_id="AUDITOR-STORE",
        patient_name="Not^Stored",
        study_uid=generate_uid(),
        series_uid=generate_uid(),
        number=1,
        size=8,
    )
    who = identity(USERNAME_AND_PASSCODE, "watcher", PASSWORD)
    with workstation(site, who, str(ds.SOPClassUID)) as assoc:
        assert assoc.is_established
        assert assoc.send_c_store(ds).Status == 0x0124  # Refused: Not Authorized
    stores: list[tuple[str, str]] = []
    deadline = time.monotonic() + 10  # the association's store event is written at release
    with site.client(headers=bearer(site.root_token)) as admin:
        while not stores and time.monotonic() < deadline:
            events = admin.get("/api/audit", params={"user": "watcher"}).json()
            stores = [(e["kind"], e["outcome"]) for e in events if e["kind"] == "store"]
            time.sleep(0.1)
    assert stores == [("store", "failure")]


def test_api_token_of_another_user_rejects_the_association(site: Site) -> None:
    with workstation(site, identity(USERNAME_AND_PASSCODE, "tester", site.alice_token)) as assoc:
        assert assoc.is_rejected


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"exp": -120}, id="expired"),
        pytest.param({"aud": "pacs"}, id="other-audience"),
        pytest.param({"preferred_username": "mallory"}, id="not-a-rix-user"),
    ],
)
def test_jwt_that_does_not_verify_rejects_the_association(
    site: Site, idp: IdentityProvider, claims: dict[str, Any]
) -> None:
    if "exp" in claims:
        claims = {"exp": int(time.time()) + claims["exp"]}
    with workstation(site, identity(JWT, idp.mint(**claims))) as assoc:
        assert assoc.is_rejected


# --- accept_any_ae only where nobody else can reach ---


def test_accept_any_ae_on_a_non_loopback_address_refuses_to_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIX_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rix.cli",
            "serve",
            "--data",
            str(tmp_path / "data"),
            "--dicom-host",
            "0.0.0.0",
            "--dicom-port",
            str(free_port()),
            "--http",
            f"127.0.0.1:{free_port()}",
            "--accept-any-ae",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    said = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert "accept_any_ae" in said
    assert "non-loopback address 0.0.0.0" in said
