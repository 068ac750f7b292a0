"""A local OpenID Connect identity provider: signing keys, a JWKS endpoint, and tokens.

It serves its JWK Set (RFC 7517 5) over HTTP on 127.0.0.1 from a thread, as a real issuer
publishes it at ``jwks_uri``, counts the fetches, can rotate to a new key and can go down.

For browser sign-in it is also an authorization server for registered clients: an
authorization endpoint (OIDC Core 3.1.2, RFC 6749 4.1.1) whose sign-in form authenticates
whoever is typed in, and a token endpoint (RFC 6749 4.1.3, 5) that authenticates the
client, checks the code (single use, short-lived, this client's, the same redirect URI)
and its PKCE verifier (RFC 7636 4.6, S256 only and required), and answers with an ID
token signed by its first key (OIDC Core 3.1.3.3) carrying the request's nonce.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://idp.region.example/realms/rix"
AUDIENCE = "rix"
JWKS_PATH = "/protocol/openid-connect/certs"
AUTHORIZATION_PATH = "/protocol/openid-connect/auth"
TOKEN_PATH = "/protocol/openid-connect/token"
CODE_SECONDS = 60  # RFC 6749 4.1.2: short-lived, 10 minutes at most
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636 4.1


@dataclass(frozen=True, slots=True, kw_only=True)
class Client:
    """A registered relying party; ``secret`` empty: a public client (RFC 6749 2.1)."""

    client_id: str
    redirect_uris: tuple[str, ...]
    secret: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Grant:
    """What an authorization code stands for, until it is redeemed once."""

    client_id: str
    redirect_uri: str
    username: str
    nonce: str | None
    challenge: str
    issued_at: float


@dataclass
class TokenRequest:
    """A token request as received, for tests to inspect (client authentication used)."""

    form: dict[str, str]
    basic: tuple[str, str] | None
    status: int = 0
    error: str = ""
    description: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SigningKey:
    kid: str
    alg: str
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    declare_alg: bool = True  # some issuers publish keys without "alg" (RFC 7517 4.4)

    @classmethod
    def generate_rsa(cls) -> SigningKey:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(kid=f"rsa-{uuid.uuid4().hex[:8]}", alg="RS256", private=private)

    @classmethod
    def generate_ec(cls) -> SigningKey:
        private = ec.generate_private_key(ec.SECP256R1())
        return cls(kid=f"ec-{uuid.uuid4().hex[:8]}", alg="ES256", private=private)

    @property
    def public(self) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
        return self.private.public_key()

    def jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.alg)
        jwk: dict[str, Any] = algorithm.to_jwk(self.public, as_dict=True)
        jwk.update(kid=self.kid, use="sig")
        if self.declare_alg:
            jwk["alg"] = self.alg
        return jwk


class IdentityProvider:
    """Publishes ``keys`` at ``jwks_url`` and signs tokens with any key, published or not."""

    def __init__(self, keys: list[SigningKey]) -> None:
        self.keys = list(keys)
        self.issuer = ISSUER
        self.audience = AUDIENCE
        self.status = 200
        self.fetches = 0
        self._lock = threading.Lock()
        self.clients: dict[str, Client] = {}
        self.requests: dict[str, dict[str, str]] = {}  # authorization requests at the form
        self.grants: dict[str, Grant] = {}
        self.token_requests: list[TokenRequest] = []
        self.issued: list[str] = []  # every code and token handed out, for leak checks
        self.id_token_claims: dict[str, Any] = {}  # overrides, None removes: a faulty IdP
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._stopped = False

    @property
    def origin(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def jwks_url(self) -> str:
        return self.origin + JWKS_PATH

    @property
    def authorization_url(self) -> str:
        return self.origin + AUTHORIZATION_PATH

    @property
    def token_url(self) -> str:
        return self.origin + TOKEN_PATH

    def register(self, client_id: str, *, redirect_uris: list[str], secret: str = "") -> Client:
        client = Client(client_id=client_id, redirect_uris=tuple(redirect_uris), secret=secret)
        self.clients[client_id] = client
        return client

    def subject_of(self, username: str) -> str:
        """A stable, never reassigned subject per person (OIDC Core 2, 5.7)."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.issuer}/{username}"))

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.jwk() for key in self.keys]}

    def rotate(self, key: SigningKey) -> None:
        """Publish ``key`` beside the current ones, as an issuer does before signing with it."""
        self.keys.append(key)

    def mint(
        self,
        *,
        key: SigningKey | None = None,
        kid: str | None = None,
        alg: str | None = None,
        signing_key: Any = None,
        **claims: Any,
    ) -> str:
        """A token for ``alice`` valid for five minutes; keyword claims override or, as
        ``None``, remove the defaults. ``signing_key`` replaces the key's private key."""
        key = key or self.keys[0]
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": "f3c1a2b4-0000-4000-8000-000000000001",
            "preferred_username": "alice",
            "iat": now,
            "exp": now + 300,
        }
        payload.update(claims)
        payload = {name: value for name, value in payload.items() if value is not None}
        return jwt.encode(
            payload,
            key.private if signing_key is None else signing_key,
            algorithm=alg or key.alg,
            headers={"kid": kid or key.kid},
        )

    @contextmanager
    def running(self) -> Iterator[IdentityProvider]:
        self._thread.start()
        try:
            yield self
        finally:
            self.stop()

    def stop(self) -> None:
        """Go down: the port then refuses connections."""
        if not self._stopped:
            self._stopped = True
            self._server.shutdown()
            self._server.server_close()

    # --- the authorization endpoint (OIDC Core 3.1.2, RFC 6749 4.1.1) ---

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], str]:
        """The answer to an authorization request: an error page for an unknown client or
        redirect URI (never redirected, RFC 6749 4.1.2.1), an error redirect for anything
        else wrong, or the sign-in form."""
        client = self.clients.get(query.get("client_id", ""))
        redirect_uri = query.get("redirect_uri", "")
        if client is None or redirect_uri not in client.redirect_uris:
            return 400, {}, "<p>Unknown client or redirect URI.</p>"
        problem = _authorization_problem(query)
        if problem:
            return self._back(
                redirect_uri,
                error=problem[0],
                state=query.get("state"),
                error_description=problem[1],
            )
        request_id = secrets.token_urlsafe(16)
        with self._lock:
            self.requests[request_id] = dict(query)
        page = (
            "<!doctype html><title>Region sign-in</title><h1>Region sign-in</h1>"
            f'<form method="post" action="{AUTHORIZATION_PATH}">'
            f'<input type="hidden" name="request" value="{html.escape(request_id)}">'
            '<label>User name <input name="username" autocomplete="username"></label>'
            '<button name="action" value="sign-in">Sign in</button>'
            '<button name="action" value="deny">Cancel</button></form>'
        )
        return 200, {"Content-Type": "text/html; charset=utf-8"}, page

    def sign_in(self, form: dict[str, str]) -> tuple[int, dict[str, str], str]:
        """The sign-in form's answer: back to the client with a code, or ``access_denied``."""
        with self._lock:
            query = self.requests.pop(form.get("request", ""), None)
        if query is None:
            return 400, {}, "<p>This sign-in has expired.</p>"
        state = query.get("state")
        if form.get("action") != "sign-in" or not form.get("username"):
            return self._back(query["redirect_uri"], error="access_denied", state=state)
        code = secrets.token_urlsafe(32)
        grant = Grant(
            client_id=query["client_id"],
            redirect_uri=query["redirect_uri"],
            username=form["username"],
            nonce=query.get("nonce"),
            challenge=query["code_challenge"],
            issued_at=time.time(),
        )
        with self._lock:
            self.grants[code] = grant
            self.issued.append(code)
        return self._back(query["redirect_uri"], code=code, state=state)

    @staticmethod
    def _back(redirect_uri: str, **params: str | None) -> tuple[int, dict[str, str], str]:
        """RFC 6749 4.1.2: a redirect to the client with ``state`` exactly as received."""
        query = urlencode({k: v for k, v in params.items() if v is not None})
        separator = "&" if urlsplit(redirect_uri).query else "?"
        return 302, {"Location": redirect_uri + separator + query}, ""

    # --- the token endpoint (RFC 6749 4.1.3, 5.1, 5.2; RFC 7636 4.6) ---

    def token(
        self, form: dict[str, str], authorization: str, content_type: str
    ) -> tuple[int, dict[str, str], str]:
        basic = _basic_credentials(authorization)
        request = TokenRequest(form=dict(form), basic=basic)
        with self._lock:
            self.token_requests.append(request)
        if not content_type.startswith("application/x-www-form-urlencoded"):
            return self._token_error(request, 400, "invalid_request")
        client, status = self._client_of(form, basic)
        if client is None:
            return self._token_error(request, status, "invalid_client", basic=basic is not None)
        if form.get("grant_type") != "authorization_code":
            return self._token_error(request, 400, "unsupported_grant_type")
        with self._lock:
            grant = self.grants.pop(form.get("code", ""), None)  # a code is redeemed once
        problem = _grant_problem(grant, client, form)
        if problem or grant is None:
            return self._token_error(request, 400, "invalid_grant", description=problem)
        id_token = self.id_token(grant)
        access_token = secrets.token_urlsafe(32)
        with self._lock:
            self.issued.extend([id_token, access_token])
        request.status = 200
        body = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": id_token,
        }
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        return 200, {**headers, "Content-Type": "application/json"}, json.dumps(body)

    def _client_of(
        self, form: dict[str, str], basic: tuple[str, str] | None
    ) -> tuple[Client | None, int]:
        """RFC 6749 2.3.1: one authentication method; a confidential client with its
        secret (Basic here), a public one naming itself with ``client_id`` (3.2.1)."""
        if basic is not None and "client_secret" in form:
            return None, 400
        if basic is not None:
            client = self.clients.get(basic[0])
            if client is None or not client.secret:
                return None, 401
            if not hmac.compare_digest(basic[1].encode(), client.secret.encode()):
                return None, 401
            if form.get("client_id", client.client_id) != client.client_id:
                return None, 400
            return client, 200
        client = self.clients.get(form.get("client_id", ""))
        if client is None or client.secret:
            return None, 401
        return client, 200

    def _token_error(
        self,
        request: TokenRequest,
        status: int,
        error: str,
        *,
        basic: bool = False,
        description: str = "",
    ) -> tuple[int, dict[str, str], str]:
        request.status, request.error, request.description = status, error, description
        headers = {"Content-Type": "application/json", "Cache-Control": "no-store"}
        if status == 401 and basic:
            headers["WWW-Authenticate"] = 'Basic realm="idp"'
        body = {"error": error, **({"error_description": description} if description else {})}
        return status, headers, json.dumps(body)

    def id_token(self, grant: Grant) -> str:
        """OIDC Core 2 and 3.1.3.6, with ``id_token_claims`` applied last."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": grant.client_id,
            "azp": grant.client_id,
            "sub": self.subject_of(grant.username),
            "preferred_username": grant.username,
            "name": grant.username.title(),
            "auth_time": now,
            "iat": now,
            "exp": now + 300,
            "nonce": grant.nonce,
        }
        claims.update(self.id_token_claims)
        return self.mint(**claims)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path == AUTHORIZATION_PATH:
                    query = {k: v[0] for k, v in parse_qs(url.query).items()}
                    self._answer(*provider.authorize(query))
                    return
                with provider._lock:
                    provider.fetches += 1
                if provider.status != 200:
                    self.send_error(provider.status)
                    return
                headers = {"Content-Type": "application/json"}
                self._answer(200, headers, json.dumps(provider.jwks()))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace")
                form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
                path = urlsplit(self.path).path
                if path == AUTHORIZATION_PATH:
                    self._answer(*provider.sign_in(form))
                elif path == TOKEN_PATH:
                    authorization = self.headers.get("Authorization", "")
                    content_type = self.headers.get("Content-Type", "")
                    self._answer(*provider.token(form, authorization, content_type))
                else:
                    self.send_error(404)

            def _answer(self, status: int, headers: dict[str, str], body: str) -> None:
                data = body.encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if "Content-Type" not in headers:
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def _authorization_problem(query: dict[str, str]) -> tuple[str, str] | None:
    """What is wrong with an authorization request from a known client (error code and
    description), or None: OIDC Core 3.1.2.1, RFC 6749 4.1.1, RFC 7636 4.4.1."""
    if query.get("response_type") != "code":
        return "unsupported_response_type", "only the code flow"
    if "openid" not in query.get("scope", "").split():
        return "invalid_scope", "an OpenID Connect request needs scope openid"
    if not query.get("code_challenge"):
        return "invalid_request", "code challenge required"
    if query.get("code_challenge_method") != "S256":
        return "invalid_request", "transform algorithm not supported"
    return None


def _grant_problem(grant: Grant | None, client: Client, form: dict[str, str]) -> str:
    """Why a code does not redeem (RFC 6749 4.1.3, RFC 7636 4.6), or empty."""
    if grant is None:
        return "unknown or used code"
    if grant.client_id != client.client_id:
        return "code issued to another client"
    if time.time() - grant.issued_at > CODE_SECONDS:
        return "code expired"
    if form.get("redirect_uri") != grant.redirect_uri:
        return "redirect_uri differs from the authorization request's"
    verifier = form.get("code_verifier", "")
    if not _VERIFIER.fullmatch(verifier):
        return "malformed code verifier"
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    if not hmac.compare_digest(challenge, grant.challenge):
        return "code verifier does not match the challenge"
    return ""


def _basic_credentials(authorization: str) -> tuple[str, str] | None:
    """RFC 7617 credentials, each part form-decoded as RFC 6749 2.3.1 has them encoded."""
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except ValueError:
        return ("", "")
    client_id, _, secret = decoded.partition(":")
    return unquote_plus(client_id), unquote_plus(secret)
