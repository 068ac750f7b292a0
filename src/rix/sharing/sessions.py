"""Opening a link: its token exchanged for a browser session of the share's own.

The link is ``<public URL>/s#<token>``. The token travels in the URL's fragment, which
browsers never send to a server, so it reaches no access log, proxy log or Referer header;
the page's script posts it once and takes it out of the address bar. The server exchanges
it for a session (``share_sessions``, a 2-hour cookie holding another random secret, also
stored hashed), verified by the PIN first when the share has one (``rix.sharing.pins``).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, update

from rix import access, audit
from rix.access import Principal, trail
from rix.archive import Archive
from rix.errors import RixError
from rix.index.database import begin_write
from rix.index.workflow_tables import share_sessions, shares
from rix.sharing.record import TOKEN_BYTES, Share, digest, from_row, select_shares

SESSION_SECONDS = 2 * 3600.0


class LinkClosed(RixError):
    """A link that no longer opens anything: expired, revoked, locked or never issued."""

    http_status = 410


class Locked(RixError):
    http_status = 423


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    share: Share
    verified: bool


def open_link(archive: Archive, token: str, source: str) -> tuple[Share, str]:
    """Exchange a link's token for a browser session; returns the share and the session
    secret for the cookie. A closed link is ``LinkClosed`` (or ``Locked``) with what
    happened to it; every opening, refused ones too, is audited (a burst of refused
    openings from one address is someone guessing)."""
    token = token.strip()
    with begin_write(archive.engine) as conn:
        row = conn.execute(select_shares().where(shares.c.token_hash == digest(token))).first()
        share = None if row is None or not token else from_row(conn, row)
        refusal = _refusal(share)
        if share is None or refusal is not None:
            principal = (
                share.principal(source)
                if share is not None
                else Principal(kind=access.PrincipalKind.SHARE, name="share:?", source=source)
            )
            reason = "unknown link" if refusal is None else refusal.reason
            detail: dict[str, Any] = {"via": "share-link", "reason": reason}
            trail.record_in(conn, principal, audit.Kind.LOGIN, audit.Outcome.REFUSED, None, detail)
        else:
            secret = secrets.token_urlsafe(TOKEN_BYTES)
            now = time.time()
            conn.execute(
                insert(share_sessions).values(
                    secret_hash=digest(secret),
                    share_pk=share.pk,
                    verified=not share.has_pin,
                    source=source[:64],
                    created_at=now,
                    expires_at=min(now + SESSION_SECONDS, share.expires_at),
                )
            )
            detail = {"via": "share-link", "pin_needed": share.has_pin}
            trail.record_in(
                conn, share.principal(source), audit.Kind.LOGIN, audit.Outcome.SUCCESS, None, detail
            )
    if share is None:
        raise LinkClosed("this link is not valid: check it was copied whole")
    if refusal is not None:
        raise refusal
    return share, secret


def _refusal(share: Share | None) -> RixError | None:
    """Why ``share``'s link opens nothing now, or None while it is open."""
    if share is None:
        return None
    state = share.state()
    if state == "expired":
        until = time.strftime("%d %b %Y %H:%M:%S UTC", time.gmtime(share.expires_at))
        return LinkClosed(f"this link expired on {until}: ask the sender for a new one")
    if state == "revoked":
        return LinkClosed("this link was withdrawn by the sender")
    if state == "locked":
        return Locked("this link is locked after too many wrong PINs: ask the sender")
    return None


def session_of(conn: Connection, secret: str, *, with_studies: bool = False) -> Session | None:
    """The share a browser session belongs to, while both are open; None otherwise. One
    query: every DICOMweb request of a share's viewer asks it (the studies themselves are
    ``access.scope``'s business; only the share's pages list them, ``with_studies``)."""
    if not secret:
        return None
    row = conn.execute(
        select_shares()
        .add_columns(share_sessions.c.verified)
        .join(share_sessions, share_sessions.c.share_pk == shares.c.id)
        .where(
            share_sessions.c.secret_hash == digest(secret),
            share_sessions.c.expires_at > time.time(),
        )
    ).first()
    if row is None:
        return None
    share = from_row(conn, row, with_studies=with_studies)
    if share.state() != "open":
        return None
    return Session(share=share, verified=bool(row.verified))


def why_closed(conn: Connection, secret: str) -> RixError | None:
    """Why a session ``session_of`` refused opens nothing: its share's state, one status
    for one state whatever the request (locked 423; expired or withdrawn 410); None when
    the session itself has ended or never was."""
    row = conn.execute(
        select_shares()
        .join(share_sessions, share_sessions.c.share_pk == shares.c.id)
        .where(
            share_sessions.c.secret_hash == digest(secret),
            share_sessions.c.expires_at > time.time(),
        )
    ).first()
    return None if row is None or not secret else _refusal(from_row(conn, row))


def end_session(archive: Archive, secret: str) -> None:
    with begin_write(archive.engine) as conn:
        conn.execute(
            update(share_sessions)
            .where(share_sessions.c.secret_hash == digest(secret))
            .values(expires_at=time.time())
        )
