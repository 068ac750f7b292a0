"""A local OpenID Connect identity provider: signing keys, a JWKS endpoint, and tokens.

It serves its JWK Set (RFC 7517 5) over HTTP on 127.0.0.1 from a thread, as a real issuer
publishes it at ``jwks_uri``, counts the fetches, can rotate to a new key and can go down.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://idp.region.example/realms/rix"
AUDIENCE = "rix"


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
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._stopped = False

    @property
    def jwks_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/protocol/openid-connect/certs"

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

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with provider._lock:
                    provider.fetches += 1
                if provider.status != 200:
                    self.send_error(provider.status)
                    return
                body = json.dumps(provider.jwks()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
