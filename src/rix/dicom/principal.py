"""Who is on the other end of an association: the calling AE, or a user it names.

The calling AE title must be registered (to a trust) unless ``accept_any_ae`` is on
(PS3.8 A-ASSOCIATE-RJ reason 3 otherwise). A workstation may also identify its user with
User Identity Negotiation (PS3.7 D.3.3.7): type 2 (user name and password, or an API
token as the passcode) or type 5 (an OpenID Connect JWT). An identity that does not
verify rejects the association (pynetdicom answers reason 0x01, transient).
"""

from __future__ import annotations

from typing import Any

import structlog
from pynetdicom.events import Event

from rix import audit
from rix.access import Principal
from rix.access.trail import record_login
from rix.archive import Archive
from rix.auth import identify
from rix.auth.credentials import PREFIX, CredentialKind
from rix.auth.users import User
from rix.errors import Unauthenticated
from rix.region import aes

log = structlog.get_logger(__name__)

USERNAME_AND_PASSCODE = 2
JWT = 5


def _source(event: Event) -> str:
    """The peer's IP address (the requestor's socket address, not anything it claims)."""
    address: Any = event.assoc.requestor.address
    return str(address)


def on_requested(event: Event, archive: Archive) -> None:
    """EVT_REQUESTED: attach the calling AE's principal, or reject an unknown AE."""
    primitive: Any = event.assoc.requestor.primitive
    calling = str(primitive.calling_ae_title).strip()
    source = _source(event)
    peer = aes.get(archive.engine, calling)
    if peer is None and not archive.settings.accept_any_ae:
        _reject(event, "calling AE title not registered")
        return
    if peer is not None and not aes.connects_from(peer, source):
        # an AE title is only a name anyone can send; the registered host is what makes it
        # that trust's PACS (with DICOM TLS, the client certificate as well)
        _reject(event, "calling AE title registered for another address")
        return
    trust = None if peer is None else peer.trust
    event.assoc.rix_principal = Principal.of_ae(calling, trust, source)  # type: ignore[attr-defined]


def _reject(event: Event, why: str) -> None:
    """A-ASSOCIATE-RJ, calling AE title not recognised (PS3.8 9.3.4)."""
    log.warning("association refused: " + why)
    event.assoc.acse.send_reject(0x01, 0x01, 0x03)
    # Wait, as pynetdicom's own rejections do, until the A-ASSOCIATE-RJ has left:
    # pynetdicom closes the socket right after this handler, and the peer would
    # otherwise see an abort instead of the reason.
    event.assoc.kill()


def on_user_identity(event: Event, archive: Archive) -> tuple[bool, bytes | None]:
    """EVT_USER_ID: verify the user the requestor names; the association acts as them."""
    kind = int(event.user_id_type)  # type: ignore[attr-defined]
    primary = bytes(event.primary_field).decode("utf-8", "replace")  # type: ignore[attr-defined]
    secondary = bytes(event.secondary_field or b"").decode("utf-8", "replace")  # type: ignore[attr-defined]
    ae_principal = principal_of(event)
    try:
        user = _verify(archive, kind, primary, secondary)
    except Unauthenticated as exc:
        _audit_login(archive, ae_principal, primary, audit.Outcome.REFUSED, exc.reason)
        return False, None
    principal = Principal.of_user(user, ae_principal.source)
    event.assoc.rix_principal = principal  # type: ignore[attr-defined]
    _audit_login(archive, principal, user.username, audit.Outcome.SUCCESS, "")
    return True, None


def _verify(archive: Archive, kind: int, primary: str, secondary: str) -> User:
    if kind == USERNAME_AND_PASSCODE:
        if secondary.startswith(PREFIX):
            user = identify.by_secret(archive.engine, secondary, CredentialKind.API_TOKEN)
            if user.username != primary:
                raise Unauthenticated(identify.REFUSED)
            return user
        return identify.by_password(archive.engine, primary, secondary)
    if kind == JWT:
        return identify.by_bearer(archive.engine, archive.settings, primary)
    raise Unauthenticated(f"user identity type {kind} is not supported (use 2 or 5)")


def _audit_login(
    archive: Archive, principal: Principal, username: str, outcome: audit.Outcome, reason: str
) -> None:
    extra = {"username": username, **({"reason": reason} if reason else {})}
    record_login(archive.writer.submit, principal, outcome, "dicom-user-identity", **extra)


def principal_of(event: Event) -> Principal:
    """The principal ``on_requested`` attached (always set before any DIMSE message)."""
    principal: Principal = getattr(event.assoc, "rix_principal")  # noqa: B009
    return principal
