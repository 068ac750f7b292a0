"""Browser sign-in with the region's OpenID Connect provider: the authorization code flow
with PKCE (OIDC Core 3.1, RFC 6749 4.1, RFC 7636 S256).

rix sends the browser to the identity provider with a fresh ``state``, ``nonce`` and PKCE
challenge, and gets it back with a code that only rix, holding the PKCE verifier (and the
client secret, if it has one), can exchange at the token endpoint for an ID token. The ID
token is verified like a bearer JWT (``rix.auth.oidc``) for rix's client ID, and must carry
the ``nonce`` of this sign-in. Its username claim names the rix user: the identity provider
authenticates, rix authorises (an unknown or disabled user is refused).

A started sign-in is kept in the index for ``LIFETIME`` seconds, keyed by a hash of its
``state``, so the browser may come back to any web node; ``take`` removes it: a state
answers once, and only in the browser that started it (the HTTP layer binds it to an
HttpOnly cookie). Every failure is a :class:`SignInFailed` whose ``reason`` is fixed text
for the audit trail and logs: never a code, token or claim value.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import structlog
from sqlalchemy import Engine, delete, func, insert, select

from rix.auth import identify
from rix.auth.oidc import OidcIdentity
from rix.auth.users import User
from rix.config import Settings
from rix.errors import RixError, Unauthenticated
from rix.index import schema
from rix.index.database import begin_write

log = structlog.get_logger(__name__)

CALLBACK_PATH = "/login/oidc/callback"
LIFETIME = 600.0  # seconds from leaving rix to coming back from the identity provider
CAPACITY = 10_000  # started sign-ins held at once; beyond it the oldest are dropped
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
_MAX_TOKEN_RESPONSE = 1 << 20

TRY_AGAIN = "Signing in with your organisation's account did not work. Please try again."
# RFC 6749 4.1.2.1 and 5.2, OIDC Core 3.1.2.6: codes that may be shown and audited. Any
# other value, and every error_description, is text from the network, never repeated.
_ERROR_CODES = frozenset(
    {
        "invalid_request",
        "unauthorized_client",
        "access_denied",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
        "interaction_required",
        "login_required",
        "account_selection_required",
        "consent_required",
        "invalid_client",
        "invalid_grant",
        "unsupported_grant_type",
    }
)


class SignInFailed(RixError):
    """A browser sign-in through the identity provider that proved nothing (HTTP 401).

    ``reason`` is for the audit trail and logs; ``message`` is for the person signing in.
    """

    http_status = 401

    def __init__(self, reason: str, *, message: str = TRY_AGAIN) -> None:
        super().__init__(reason)
        self.message = message


class CallbackInvalid(SignInFailed):
    """A return from the identity provider that is not the answer to a sign-in this
    browser started here: unknown, used, expired or another browser's ``state`` (HTTP 400).
    """

    http_status = 400


STATE_REFUSED = "This sign-in has expired or was already used. Please sign in again from this page."
NOT_A_USER = (
    "Your organisation's account is not an active rix user. Ask your rix administrator for access."
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingSignIn:
    """One sign-in between leaving for the identity provider and coming back.

    ``target`` is the page to land on (already checked to be a path on this site);
    ``verifier`` is the PKCE code verifier (RFC 7636 4.1: 43 to 128 unreserved characters).
    """

    state: str
    nonce: str
    verifier: str
    target: str
    started_at: float

    @property
    def challenge(self) -> str:
        return code_challenge(self.verifier)


def code_challenge(verifier: str) -> str:
    """RFC 7636 4.2 S256: BASE64URL(SHA256(ASCII(code_verifier))), unpadded."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class PendingSignIns:
    """Started sign-ins, by ``state``, in the index (``oidc_sign_ins``): the browser may
    come back to any web node of a region. Each can be taken once.

    The table holds the SHA-256 of each state, never the state itself; rows older than
    ``lifetime`` are deleted as new sign-ins start, and beyond ``capacity`` the oldest go
    first (a flood of started sign-ins cannot grow the table without bound).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        lifetime: float = LIFETIME,
        capacity: int = CAPACITY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._lifetime = lifetime
        self._capacity = capacity
        self._clock = clock  # wall-clock time: nodes of a region share it, not a monotonic one

    def start(self, *, target: str) -> PendingSignIn:
        """A new sign-in with 256-bit random ``state``, ``nonce`` and verifier."""
        now = self._clock()
        pending = PendingSignIn(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            verifier=secrets.token_urlsafe(64),  # 86 characters
            target=target,
            started_at=now,
        )
        table = schema.oidc_sign_ins
        with begin_write(self._engine) as conn:
            conn.execute(delete(table).where(table.c.started_at <= now - self._lifetime))
            conn.execute(
                insert(table).values(
                    state_hash=_digest(pending.state),
                    nonce=pending.nonce,
                    verifier=pending.verifier,
                    target=pending.target,
                    started_at=now,
                )
            )
            held = conn.execute(select(func.count()).select_from(table)).scalar_one()
            if held > self._capacity:
                oldest = (
                    select(table.c.state_hash)
                    .order_by(table.c.started_at, table.c.state_hash)
                    .limit(held - self._capacity)
                )
                conn.execute(delete(table).where(table.c.state_hash.in_(oldest.scalar_subquery())))
        return pending

    def take(self, state: str, *, browser_state: str) -> PendingSignIn:
        """The sign-in ``state`` names, removed so it never answers again; refused when it
        is unknown, used, expired, or not the one this browser started (``browser_state``,
        from its cookie: without it, anyone's code could sign a victim in as them)."""
        row = None
        if state:
            table = schema.oidc_sign_ins
            with begin_write(self._engine) as conn:
                row = conn.execute(
                    delete(table)
                    .where(table.c.state_hash == _digest(state))
                    .returning(table.c.nonce, table.c.verifier, table.c.target, table.c.started_at)
                ).first()
        if row is None or self._clock() - row.started_at >= self._lifetime:
            raise CallbackInvalid("state unknown, used or expired", message=STATE_REFUSED)
        if not hmac.compare_digest(state.encode(), browser_state.encode()):
            raise CallbackInvalid("state not started by this browser", message=STATE_REFUSED)
        return PendingSignIn(
            state=state,
            nonce=row.nonce,
            verifier=row.verifier,
            target=row.target,
            started_at=row.started_at,
        )


def _digest(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def authorization_url(settings: Settings, pending: PendingSignIn, *, redirect_uri: str) -> str:
    """Where the browser goes to sign in: OIDC Core 3.1.2.1, RFC 7636 4.3."""
    scope = "openid profile" + (" email" if settings.oidc_username_claim == "email" else "")
    query = urlencode(
        {
            "response_type": "code",
            "scope": scope,
            "client_id": settings.oidc_client_id,
            "redirect_uri": redirect_uri,
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": pending.challenge,
            "code_challenge_method": "S256",
        },
        quote_via=quote,
    )
    separator = "&" if "?" in settings.oidc_authorization_url else "?"
    return settings.oidc_authorization_url + separator + query


def error_code(value: str) -> str:
    """An OAuth error code fit to show and audit, or ``error`` for anything else."""
    return value if value in _ERROR_CODES else "error"


def complete(
    *,
    settings: Settings,
    engine: Engine,
    pending: PendingSignIn,
    code: str,
    redirect_uri: str,
    transport: httpx.BaseTransport | None = None,
) -> User:
    """The rix user a returned authorization code signs in, or :class:`SignInFailed`.

    Blocking (the token endpoint, maybe the JWKS): run it off the event loop.
    """
    id_token = exchange_code(
        settings,
        code=code,
        verifier=pending.verifier,
        redirect_uri=redirect_uri,
        transport=transport,
    )
    identity = verify_id_token(settings, id_token, nonce=pending.nonce)
    try:
        return identify.by_oidc_identity(engine, identity)
    except Unauthenticated as exc:
        raise SignInFailed("not an active rix user", message=NOT_A_USER) from exc


def exchange_code(
    settings: Settings,
    *,
    code: str,
    verifier: str,
    redirect_uri: str,
    transport: httpx.BaseTransport | None = None,
) -> str:
    """The ID token the token endpoint gives for ``code`` (RFC 6749 4.1.3, RFC 7636 4.5).

    A confidential client authenticates with HTTP Basic, its ID and secret form-encoded
    first (RFC 6749 2.3.1); a public client names itself with ``client_id``. TLS is
    verified against the system's trust store, as the JWKS fetch is; no redirect is
    followed (the code and verifier go to the configured URL only).
    """
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    auth: httpx.BasicAuth | None = None
    if settings.oidc_client_secret:
        auth = httpx.BasicAuth(
            quote(settings.oidc_client_id, safe=""), quote(settings.oidc_client_secret, safe="")
        )
    else:
        form["client_id"] = settings.oidc_client_id
    try:
        with httpx.Client(
            timeout=TIMEOUT,
            verify=ssl.create_default_context(),
            follow_redirects=False,
            transport=transport,
        ) as client:
            status, body = _post(client, settings.oidc_token_url, form=form, auth=auth)
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("oidc.token_endpoint_unavailable", error=type(exc).__name__)
        raise SignInFailed("token endpoint unavailable") from exc
    if status != 200:
        refusal = error_code(str(body.get("error", ""))) if isinstance(body, dict) else "error"
        log.warning("oidc.code_refused", status=status, error=refusal)
        raise SignInFailed(f"token endpoint refused the code: {refusal}")
    id_token = body.get("id_token") if isinstance(body, dict) else None
    if not isinstance(id_token, str) or not id_token:
        raise SignInFailed("token response has no id_token")
    return id_token


def _post(
    client: httpx.Client, url: str, *, form: dict[str, str], auth: httpx.BasicAuth | None
) -> tuple[int, Any]:
    """Status and JSON body (``None`` when not JSON) of a form POST, at most 1 MiB read."""
    headers = {"Accept": "application/json"}
    with client.stream("POST", url, data=form, auth=auth, headers=headers) as answer:
        body = b""
        for chunk in answer.iter_bytes():
            body += chunk
            if len(body) > _MAX_TOKEN_RESPONSE:
                raise ValueError("token response too large")
    try:
        return answer.status_code, json.loads(body)
    except ValueError:
        return answer.status_code, None


def verify_id_token(settings: Settings, id_token: str, *, nonce: str) -> OidcIdentity:
    """OIDC Core 3.1.3.7: signature by the issuer's keys, ``iss``, ``aud`` containing
    rix's client ID, ``exp``; ``azp`` when present (or when there are several audiences)
    naming rix; and the ``nonce`` this sign-in sent, so a token from another sign-in (a
    replayed or injected one) signs nobody in here."""
    verifier = identify.oidc_verifier(
        settings.oidc_issuer,
        settings.oidc_client_id,
        settings.oidc_jwks_url,
        settings.oidc_username_claim,
    )
    try:
        identity = verifier.verify(id_token)
    except Unauthenticated as exc:
        raise SignInFailed(f"ID token refused: {exc.reason}") from exc
    audience = identity.claims["aud"]
    several = isinstance(audience, list) and len(audience) > 1
    party = identity.claims.get("azp")
    if (several or party is not None) and party != settings.oidc_client_id:
        raise SignInFailed("ID token refused: issued to another party (azp)")
    claimed = identity.claims.get("nonce")
    if not isinstance(claimed, str) or not hmac.compare_digest(claimed.encode(), nonce.encode()):
        raise SignInFailed("ID token refused: nonce does not match this sign-in")
    return identity
