"""A share's PIN: a second secret the sender passes another way (by phone), so a forwarded
or intercepted email alone opens nothing. Stored as an Argon2 hash; the fifth wrong PIN
locks the share and tells its owner.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, select, update

from rix import audit
from rix.access import Principal, trail
from rix.archive import Archive
from rix.config import Settings
from rix.errors import AccessDenied
from rix.index.database import begin_write
from rix.index.workflow_tables import share_sessions, shares
from rix.jobs import mail
from rix.sharing.record import Share, digest
from rix.sharing.sessions import LinkClosed, Locked, session_of, why_closed

PIN_DIGITS = 6
MAX_PIN_FAILURES = 5
_pins = PasswordHasher()


def new() -> str:
    """A fresh PIN, shown once to the sender and never stored in clear."""
    return "".join(secrets.choice("0123456789") for _ in range(PIN_DIGITS))


def hashed(pin: str) -> str:
    return _pins.hash(pin)


def check(archive: Archive, secret: str, pin: str, source: str) -> Share:
    """Verify the PIN for a session; the fifth wrong one locks the share and tells its
    owner. Each failure is audited, and counted in the share, not the session, so a new
    session does not reset the count."""
    with begin_write(archive.engine) as conn:
        found = session_of(conn, secret)
        if found is None:
            raise why_closed(conn, secret) or LinkClosed(
                "this session has ended: open the link again"
            )
        share = found.share
        row = conn.execute(select(shares.c.pin_hash).where(shares.c.id == share.pk)).first()
        assert row is not None
        if not row.pin_hash or _matches(row.pin_hash, pin.strip()):
            conn.execute(
                update(share_sessions)
                .where(share_sessions.c.secret_hash == digest(secret))
                .values(verified=True)
            )
            return share
        failures = share.pin_failures + 1
        locking = failures >= MAX_PIN_FAILURES
        conn.execute(
            update(shares)
            .where(shares.c.id == share.pk)
            .values(
                pin_failures=shares.c.pin_failures + 1,
                locked_at=time.time() if locking else None,
            )
        )
        principal = share.principal(source)
        detail: dict[str, Any] = {"via": "share-pin", "failures": failures}
        trail.record_in(conn, principal, audit.Kind.LOGIN, audit.Outcome.REFUSED, None, detail)
        if locking:
            _locked(conn, archive.settings, share, principal)
    if locking:
        raise Locked("too many wrong PINs: this link is now locked; the sender has been told")
    left = MAX_PIN_FAILURES - failures
    raise AccessDenied(f"wrong PIN: {left} {'try' if left == 1 else 'tries'} left")


def _matches(pin_hash: str, pin: str) -> bool:
    try:
        return _pins.verify(pin_hash, pin)
    except (VerificationError, InvalidHashError):
        return False


def _locked(conn: Connection, settings: Settings, share: Share, principal: Principal) -> None:
    """The owner is alerted: audited as a refused share event (the status page and the
    audit export show refusals) and by email when the owner has an address."""
    detail = {"share": share.pk, "locked": True, "failures": MAX_PIN_FAILURES}
    trail.record_in(conn, principal, audit.Kind.SHARE, audit.Outcome.REFUSED, None, detail)
    mail.enqueue(
        conn,
        settings,
        to=share.owner_email,
        subject="A share link you sent was locked after wrong PINs",
        body=(
            f"Dear {share.owner_name},\n\nYour second-opinion link for "
            f"{share.recipient_name} (share {share.pk}) was locked after "
            f"{MAX_PIN_FAILURES} wrong PINs. If the recipient did not mistype it, someone "
            "else may hold the link. Nothing more can be opened with it; create a new "
            "share if the recipient still needs the images.\n\nrix\n"
        ),
        trust_pk=share.trust_pk,
    )
