"""Single sign-on through the region's identity provider, in Chromium against a live server.

The authorization code flow with PKCE (OIDC Core 3.1, RFC 6749 4.1, RFC 7636): rix sends
the browser to tests/peers/oidc.py's identity provider with state, nonce and an S256
challenge; the provider's sign-in form sends it back with a code, which rix redeems with
its client secret (client_secret_basic) and verifier; the ID token must be the issuer's,
for rix's client ID, current, and carry this sign-in's nonce; its username claim must name
an active rix user. A state answers once, in the browser that started it. Every attempt is
audited; no code, token or claim value is ever written to the audit trail or the log.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route
from sqlalchemy import Engine, func, select

from rix.auth.oidc_login import (
    CALLBACK_PATH,
    NOT_A_USER,
    STATE_REFUSED,
    TRY_AGAIN,
    CallbackInvalid,
    PendingSignIns,
    code_challenge,
    exchange_code,
)
from rix.config import Settings, SettingsError, load
from rix.index import database
from rix.index.schema import oidc_sign_ins
from tests.peers.oidc import IdentityProvider, SigningKey
from tests.peers.server import RixServer

CLIENT_ID = "rix-portal"
CLIENT_SECRET = "s3cret:with/odd+chars"  # RFC 6749 2.3.1: form-encoded before Basic
PASSWORD = "correct horse battery staple"
SSO_LINK = "text=Sign in with your organisation's account"


@dataclass(frozen=True, slots=True, kw_only=True)
class Site:
    """A server of the module's own trusting the identity provider: ``olivia`` (clinician
    at TEST, with a password too), ``dora`` (disabled) and ``root`` (region admin)."""

    server: RixServer
    origin: str
    root_token: str
    authorization_url: str  # the identity provider's

    @property
    def callback(self) -> str:
        return self.origin + CALLBACK_PATH


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    with IdentityProvider([SigningKey.generate_rsa()]).running() as provider:
        yield provider


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, idp: IdentityProvider) -> Iterator[Site]:
    server = RixServer(data=tmp_path_factory.mktemp("sso") / "data")
    origin = f"http://127.0.0.1:{server.http_port}"
    idp.register(CLIENT_ID, redirect_uris=[origin + CALLBACK_PATH], secret=CLIENT_SECRET)
    server.extra_env.update(
        RIX_OIDC_ISSUER=idp.issuer,
        RIX_OIDC_AUDIENCE=idp.audience,
        RIX_OIDC_JWKS_URL=idp.jwks_url,
        RIX_OIDC_CLIENT_ID=CLIENT_ID,
        RIX_OIDC_CLIENT_SECRET=CLIENT_SECRET,
        RIX_OIDC_AUTHORIZATION_URL=idp.authorization_url,
        RIX_OIDC_TOKEN_URL=idp.token_url,
    )
    try:
        server.start()
        server.add_user("root", "region-admin")
        root = server.create_token("root")
        with httpx.Client(base_url=origin + "/api", headers=bearer(root), timeout=30) as admin:
            assert admin.post("/trusts", json={"code": "TEST", "name": "Test"}).is_success
            for username, password in (("olivia", PASSWORD), ("dora", "")):
                user = {"username": username, "roles": ["clinician"], "trust": "TEST"}
                answer = admin.post("/users", json={**user, "password": password})
                assert answer.is_success, answer.text
            assert admin.post("/users/dora/disable").is_success
        yield Site(
            server=server,
            origin=origin,
            root_token=root,
            authorization_url=idp.authorization_url,
        )
    finally:
        server.stop(wait=False)


@pytest.fixture
def context(chromium: Browser) -> Iterator[BrowserContext]:
    context = chromium.new_context()
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def faulty_idp(idp: IdentityProvider) -> Iterator[IdentityProvider]:
    """The identity provider; whatever a test puts in ``id_token_claims`` is undone."""
    try:
        yield idp
    finally:
        idp.id_token_claims.clear()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def start(page: Page, site: Site, next: str = "/search") -> None:
    page.goto(f"{site.origin}/login/oidc?next={quote(next, safe='')}")


def at_the_idp(page: Page, username: str, *, action: str = "sign-in") -> int:
    """Sign in (or cancel) on the identity provider's form; the status of rix's callback."""
    page.fill("input[name=username]", username)
    with page.expect_response(lambda r: CALLBACK_PATH in r.url) as answer:
        page.click(f"button[value={action}]")
    page.wait_for_load_state()
    return answer.value.status


def held_callback(context: BrowserContext, site: Site, username: str = "olivia") -> str:
    """Sign in at the identity provider but hold the way back: the callback URL (code and
    state) the provider redirected to, which the browser has not followed."""
    held: list[str] = []

    def hold(route: Route) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        answer = route.fetch(max_redirects=0)  # the sign-in form's 302 back to rix
        held.append(answer.headers["location"])
        route.fulfill(status=200, body="held", content_type="text/plain")

    pattern = re.compile(re.escape(site.authorization_url))
    context.route(pattern, hold)
    page = context.new_page()
    start(page, site)
    page.fill("input[name=username]", username)
    page.click("button[value=sign-in]")
    page.wait_for_load_state()
    context.unroute(pattern)
    page.close()
    assert len(held) == 1 and held[0].startswith(site.callback + "?")
    return held[0]


def with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | params
    return f"{parts.scheme}://{parts.netloc}{parts.path}?" + "&".join(
        f"{k}={quote(v, safe='')}" for k, v in query.items()
    )


def cookies(context: BrowserContext) -> dict[str, Any]:
    return {c["name"]: c for c in context.cookies()}


def oidc_logins(site: Site) -> list[dict[str, Any]]:
    """Sign-in events through the identity provider, newest first."""
    with httpx.Client(base_url=site.origin, timeout=30) as admin:
        answer = admin.get(
            "/api/audit",
            params={"limit": 1000},
            headers=bearer(site.root_token),
        )
    answer.raise_for_status()
    return [e for e in answer.json() if e["kind"] == "login" and e["detail"].get("via") == "oidc"]


def last_refusal(site: Site) -> dict[str, Any]:
    event = oidc_logins(site)[0]
    assert event["outcome"] != "success", event
    return event


# --- the sign-in page and the authorization request ---


def test_sign_in_page_offers_the_organisations_account_above_the_password_form(
    context: BrowserContext, site: Site
) -> None:
    page = context.new_page()
    page.goto(site.origin + "/login?next=/search%3Fq%3Dx")
    link = page.locator("a", has_text="Sign in with your organisation's account")
    assert link.get_attribute("href") == "/login/oidc?next=%2Fsearch%3Fq%3Dx"
    html = page.content()
    assert html.index("/login/oidc?next=") < html.index('action="/login"')


def test_authorization_request_carries_state_nonce_and_an_s256_challenge(
    site: Site, idp: IdentityProvider
) -> None:
    with httpx.Client(base_url=site.origin, timeout=30) as anonymous:
        answers = [anonymous.get("/login/oidc", params={"next": "/search"}) for _ in range(2)]
    requests = []
    for answer in answers:
        assert answer.status_code == 303
        location = answer.headers["location"]
        assert location.startswith(idp.authorization_url + "?")
        query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        assert query["response_type"] == "code"
        assert {"openid", "profile"} <= set(query["scope"].split())
        assert (query["client_id"], query["redirect_uri"]) == (CLIENT_ID, site.callback)
        assert query["code_challenge_method"] == "S256"
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", query["code_challenge"])
        assert len(query["state"]) >= 43 and len(query["nonce"]) >= 43
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith(f"rix_oidc_state={query['state']};")
        assert {"httponly", "max-age=600", "path=/login/oidc", "samesite=lax"} <= {
            part.strip().lower() for part in cookie.split(";")
        }
        requests.append(query)
    fresh = ("state", "nonce", "code_challenge")
    assert all(requests[0][name] != requests[1][name] for name in fresh)


def test_callback_is_public_and_refuses_a_sign_in_never_started(site: Site) -> None:
    with httpx.Client(base_url=site.origin, timeout=30) as anonymous:
        answer = anonymous.get(CALLBACK_PATH, params={"code": "x", "state": "made-up"})
    assert answer.status_code == 400
    assert "set-cookie: rix_session" not in str(answer.headers).lower()
    assert "expired or was already used" in answer.text


# --- signing in ---


def test_sign_in_with_the_identity_provider_lands_on_next_signed_in(
    context: BrowserContext, site: Site, idp: IdentityProvider
) -> None:
    page = context.new_page()
    page.goto(site.origin + "/search?q=hartley")
    assert urlsplit(page.url).path == "/login"
    page.click(SSO_LINK)
    assert page.url.startswith(idp.authorization_url)
    assert at_the_idp(page, "olivia") == 303
    assert page.url == site.origin + "/search?q=hartley"
    assert "olivia" in page.locator("header").inner_text()
    assert "rix_oidc_state" not in cookies(context)  # the started sign-in is over
    event = oidc_logins(site)[0]
    assert (event["actor"], event["outcome"], event["detail"]) == (
        "olivia",
        "success",
        {"via": "oidc"},
    )


def test_client_authenticates_with_client_secret_basic(
    context: BrowserContext, site: Site, idp: IdentityProvider
) -> None:
    page = context.new_page()
    start(page, site)
    assert at_the_idp(page, "olivia") == 303
    request = idp.token_requests[-1]
    assert request.basic == (CLIENT_ID, CLIENT_SECRET)
    assert "client_secret" not in request.form
    assert request.form["redirect_uri"] == site.callback
    assert request.status == 200


def test_session_cookie_is_that_of_the_password_sign_in(
    chromium: Browser, context: BrowserContext, site: Site
) -> None:
    page = context.new_page()
    start(page, site)
    at_the_idp(page, "olivia")
    sso = cookies(context)["rix_session"]
    with_password = chromium.new_context()
    try:
        form = with_password.new_page()
        form.goto(site.origin + "/login?next=/search")
        form.fill("#username", "olivia")
        form.fill("#password", PASSWORD)
        form.click("button[type=submit]")
        form.wait_for_url(site.origin + "/search")
        password = cookies(with_password)["rix_session"]
    finally:
        with_password.close()
    same = ("domain", "path", "httpOnly", "secure", "sameSite")
    assert {k: sso[k] for k in same} == {k: password[k] for k in same}
    assert (sso["path"], sso["httpOnly"], sso["sameSite"]) == ("/", True, "Lax")
    assert abs(sso["expires"] - password["expires"]) < 60
    assert sso["value"] != password["value"]


@pytest.mark.parametrize("next", ["https://evil.example/", "//evil.example/", "/\\evil.example/"])
def test_next_off_this_site_lands_on_the_home_page(
    context: BrowserContext, site: Site, next: str
) -> None:
    page = context.new_page()
    start(page, site, next=next)
    assert at_the_idp(page, "olivia") == 303
    assert page.url == site.origin + "/search"


# --- refusals ---


def test_identity_provider_error_is_shown_and_audited(context: BrowserContext, site: Site) -> None:
    page = context.new_page()
    start(page, site)
    assert at_the_idp(page, "olivia", action="deny") == 401
    assert TRY_AGAIN in page.inner_text("[role=alert]")
    assert "rix_session" not in cookies(context)
    assert last_refusal(site)["detail"] == {
        "via": "oidc",
        "reason": "identity provider answered access_denied",
    }


def test_wrong_state_is_refused(context: BrowserContext, site: Site) -> None:
    url = held_callback(context, site)
    page = context.new_page()
    answer = page.goto(with_query(url, state="not-the-state-rix-sent"))
    assert answer is not None and answer.status == 400
    assert STATE_REFUSED in page.inner_text("[role=alert]")
    assert "rix_session" not in cookies(context)
    assert last_refusal(site)["detail"]["reason"] == "state unknown, used or expired"


def test_state_from_another_browser_is_refused(
    chromium: Browser, context: BrowserContext, site: Site
) -> None:
    """Login CSRF: an attacker's own callback URL, opened by a victim, signs nobody in."""
    url = held_callback(context, site, username="olivia")
    victim = chromium.new_context()
    try:
        page = victim.new_page()
        answer = page.goto(url)
        assert answer is not None and answer.status == 400
        assert "rix_session" not in cookies(victim)
    finally:
        victim.close()
    assert last_refusal(site)["detail"]["reason"] == "state not started by this browser"
    # the state was spent by that attempt: its own browser cannot use it afterwards either
    assert context.new_page().goto(url).status == 400  # type: ignore[union-attr]


def test_replayed_state_is_refused(context: BrowserContext, site: Site) -> None:
    url = held_callback(context, site)
    state_cookie = cookies(context)["rix_oidc_state"]
    page = context.new_page()
    first = page.goto(url)
    assert first is not None and first.ok and page.url == site.origin + "/search"
    context.clear_cookies()
    context.add_cookies([state_cookie])  # even with the state cookie kept by the attacker
    replay = page.goto(url)
    assert replay is not None and replay.status == 400
    assert "rix_session" not in cookies(context)
    assert last_refusal(site)["detail"]["reason"] == "state unknown, used or expired"


def test_code_redeemed_with_another_sign_ins_verifier_is_refused_by_the_identity_provider(
    chromium: Browser, context: BrowserContext, site: Site, idp: IdentityProvider
) -> None:
    """Code injection (RFC 7636 1): olivia's stolen code, brought back in the attacker's
    own sign-in, is redeemed with the attacker's verifier, which the IdP refuses."""
    stolen = parse_qs(urlsplit(held_callback(context, site, "olivia")).query)["code"][0]
    attacker = chromium.new_context()
    try:
        own = held_callback(attacker, site, "mallory")
        page = attacker.new_page()
        answer = page.goto(with_query(own, code=stolen))
        assert answer is not None and answer.status == 401
        assert TRY_AGAIN in page.inner_text("[role=alert]")
        assert "rix_session" not in cookies(attacker)
    finally:
        attacker.close()
    refused = idp.token_requests[-1]
    assert (refused.status, refused.error) == (400, "invalid_grant")
    assert refused.description == "code verifier does not match the challenge"
    reason = last_refusal(site)["detail"]["reason"]
    assert reason == "token endpoint refused the code: invalid_grant"


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        pytest.param({"nonce": "forged"}, "nonce does not match this sign-in", id="nonce"),
        pytest.param({"nonce": None}, "nonce does not match this sign-in", id="no-nonce"),
        pytest.param({"aud": "pacs"}, "token is not issued for rix", id="audience"),
        pytest.param({"azp": "pacs"}, "issued to another party (azp)", id="azp"),
        pytest.param({"iss": "https://evil.example"}, "token is from another issuer", id="iss"),
        pytest.param({"exp": 1_000_000_000}, "token has expired", id="expired"),
    ],
)
def test_id_token_that_does_not_verify_is_refused(
    context: BrowserContext,
    site: Site,
    faulty_idp: IdentityProvider,
    claims: dict[str, Any],
    reason: str,
) -> None:
    faulty_idp.id_token_claims.update(claims)
    page = context.new_page()
    start(page, site)
    assert at_the_idp(page, "olivia") == 401
    assert TRY_AGAIN in page.inner_text("[role=alert]")
    assert "rix_session" not in cookies(context)
    assert last_refusal(site)["detail"]["reason"] == f"ID token refused: {reason}"


@pytest.mark.parametrize("username", ["mallory", "dora"], ids=["unknown", "disabled"])
def test_identity_provider_user_who_is_not_an_active_rix_user_is_refused(
    context: BrowserContext, site: Site, username: str
) -> None:
    page = context.new_page()
    start(page, site)
    assert at_the_idp(page, username) == 401
    assert NOT_A_USER in page.inner_text("[role=alert]")
    assert "rix_session" not in cookies(context)
    event = last_refusal(site)
    assert (event["actor"], event["detail"]["reason"]) == ("", "not an active rix user")


def test_no_code_token_or_claim_value_is_audited_or_logged(
    context: BrowserContext, site: Site, idp: IdentityProvider
) -> None:
    for username in ("olivia", "mallory"):  # a sign-in and a refusal, at least
        page = context.new_page()
        start(page, site)
        at_the_idp(page, username)
        context.clear_cookies()
    audit_text = str(oidc_logins(site))
    log = Path(str(site.server.log_path)).read_text()
    assert len(idp.issued) >= 4  # two codes, an ID token and an access token
    for secret in idp.issued:
        assert secret not in audit_text
        assert secret not in log
    assert idp.subject_of("mallory") not in audit_text + log
    assert "mallory" not in audit_text


# --- the parts, without a browser ---


def test_pkce_challenge_is_rfc_7636_s256() -> None:
    """RFC 7636 Appendix B."""
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def index(tmp_path: Path, migrated_database_url: str) -> Iterator[Engine]:
    """A migrated index of the test's own: started sign-ins live there, so every web node
    of a region can finish one."""
    settings = load({"data": tmp_path, "database_url": migrated_database_url}, env={})
    engine = database.connect(settings.index_url)
    database.upgrade(engine)
    yield engine
    engine.dispose()


def test_started_sign_in_answers_once(index: Engine) -> None:
    pending = PendingSignIns(index)
    started = pending.start(target="/search")
    assert pending.take(started.state, browser_state=started.state) == started
    with pytest.raises(CallbackInvalid):
        pending.take(started.state, browser_state=started.state)


def test_another_node_finishes_a_sign_in_started_here(index: Engine) -> None:
    started = PendingSignIns(index).start(target="/search")
    elsewhere = PendingSignIns(index)  # a second web node: same index, nothing in memory
    assert elsewhere.take(started.state, browser_state=started.state).target == "/search"


def test_the_index_holds_a_hash_of_the_state_never_the_state(index: Engine) -> None:
    started = PendingSignIns(index).start(target="/")
    with index.connect() as conn:
        held = [str(v) for v in conn.execute(select(oidc_sign_ins)).one()]
    assert started.state not in held


def test_started_sign_in_expires_after_ten_minutes(index: Engine) -> None:
    clock = Clock()
    pending = PendingSignIns(index, clock=clock)
    kept, expired = pending.start(target="/"), pending.start(target="/")
    clock.now += 599
    assert pending.take(kept.state, browser_state=kept.state).target == "/"
    clock.now += 2
    with pytest.raises(CallbackInvalid):
        pending.take(expired.state, browser_state=expired.state)


def test_started_sign_ins_are_bounded(index: Engine) -> None:
    clock = Clock()
    pending = PendingSignIns(index, capacity=2, clock=clock)
    first = pending.start(target="/")
    for _ in range(2):
        clock.now += 1
        pending.start(target="/")
    with pytest.raises(CallbackInvalid):
        pending.take(first.state, browser_state=first.state)
    with index.connect() as conn:
        assert conn.execute(select(func.count()).select_from(oidc_sign_ins)).scalar() == 2


def test_public_client_names_itself_and_sends_no_secret(idp: IdentityProvider) -> None:
    """RFC 6749 3.2.1 and RFC 7636 4.5, against the identity provider directly."""
    redirect_uri = "http://127.0.0.1:9/login/oidc/callback"
    idp.register("rix-public", redirect_uris=[redirect_uri])
    settings = Settings(
        oidc_issuer=idp.issuer,
        oidc_audience=idp.audience,
        oidc_jwks_url=idp.jwks_url,
        oidc_client_id="rix-public",
        oidc_authorization_url=idp.authorization_url,
        oidc_token_url=idp.token_url,
    )
    verifier = "v" * 43
    query = {
        "response_type": "code",
        "scope": "openid",
        "client_id": "rix-public",
        "redirect_uri": redirect_uri,
        "state": "s",
        "code_challenge": code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    with httpx.Client(timeout=10) as idp_browser:
        form = idp_browser.get(idp.authorization_url, params=query)
        request_id = re.search(r'name="request" value="([^"]+)"', form.text)
        assert request_id is not None
        back = idp_browser.post(
            idp.authorization_url,
            data={"request": request_id.group(1), "username": "olivia", "action": "sign-in"},
        )
    code = parse_qs(urlsplit(back.headers["location"]).query)["code"][0]
    id_token = exchange_code(settings, code=code, verifier=verifier, redirect_uri=redirect_uri)
    assert id_token.count(".") == 2
    request = idp.token_requests[-1]
    assert request.basic is None
    assert request.form["client_id"] == "rix-public"
    assert "client_secret" not in request.form


COMPLETE = {
    "oidc_issuer": "https://idp.example",
    "oidc_audience": "rix",
    "oidc_jwks_url": "https://idp.example/certs",
    "oidc_client_id": "rix",
    "oidc_authorization_url": "https://idp.example/auth",
    "oidc_token_url": "https://idp.example/token",
}


def test_single_sign_on_settings_load() -> None:
    assert load(COMPLETE, env={}).oidc_token_url == "https://idp.example/token"


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param({"oidc_client_id": "rix"}, id="client-without-issuer"),
        pytest.param({"oidc_token_url": "https://idp.example/t"}, id="endpoint-without-client"),
        pytest.param({**COMPLETE, "oidc_token_url": ""}, id="no-token-endpoint"),
        pytest.param({**COMPLETE, "oidc_token_url": "http://idp.example/t"}, id="plain-http"),
        pytest.param({**COMPLETE, "oidc_authorization_url": "ftp://idp.example/a"}, id="ftp"),
        pytest.param({**COMPLETE, "oidc_redirect_base": "rix.example"}, id="base-not-a-url"),
    ],
)
def test_single_sign_on_settings_are_checked_at_start(flags: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        load(flags, env={})
