"""The sender's side of a link: create it (studies of one patient, for one person, until an
expiry), list the shares one manages, revoke one, and read its trail.

The invitation is sent during the request, not queued like rix's other mail: a job would
keep the link in the index in clear until purged. The sender sees the link once and is
told when the email could not go. It carries the link, the sender's name and trust and the
expiry, and no patient identifier and not the purpose (which the sender writes freely and
may name the patient): the recipient reads both once the link is open.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

from rix import access, audit
from rix.access import EVERYTHING, Principal, share_rules, trail
from rix.access.trail import Touched
from rix.archive import Archive
from rix.auth.users import check_email
from rix.config import Settings
from rix.errors import AccessDenied, Conflict
from rix.index import queries
from rix.index.database import begin_write
from rix.index.schema import studies
from rix.index.workflow_tables import share_studies, shares
from rix.jobs import mail
from rix.region import trusts
from rix.sharing import pins
from rix.sharing.record import TOKEN_BYTES, Share, digest, from_row, get, select_shares

MAX_STUDIES = 20


@dataclass(frozen=True, slots=True, kw_only=True)
class Created:
    share: Share
    link: str  # shown once to the sender; also mailed when SMTP is configured
    pin: str  # shown once to the sender, never stored in clear, never mailed
    unsent: str  # why the email did not go ('' when it did)


def link_for(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/s#{token}"


def _checked_studies(conn: Connection, principal: Principal, uids: Sequence[str]) -> int:
    """The shared studies must all be visible to the sender and of one person (a share is
    one patient's); returns the person they belong to (0: a record with no person)."""
    if not uids:
        raise Conflict("choose at least one study to share")
    if len(uids) > MAX_STUDIES:
        raise Conflict(f"a share holds at most {MAX_STUDIES} studies")
    query = select(studies.c.study_uid, studies.c.person_pk, studies.c.patient_pk).where(
        studies.c.study_uid.in_(uids), access.scope(principal)
    )
    rows = conn.execute(query).all()
    if len(rows) != len(uids):
        raise AccessDenied("you can share only studies you can see")
    people = {(r.person_pk, None if r.person_pk is not None else r.patient_pk) for r in rows}
    if len(people) != 1:
        raise Conflict("a share holds studies of one patient")
    person_pk, _ = next(iter(people))
    return int(person_pk) if person_pk is not None else 0


def _expiry(settings: Settings, *, days: float | None, expires_at: float | None) -> float:
    now = time.time()
    latest = now + settings.share_max_days * 86400
    if expires_at is None:
        expires_at = now + (7.0 if days is None else days) * 86400
    if expires_at <= now:
        raise Conflict("the expiry must be in the future")
    if expires_at > latest + 1:
        raise Conflict(f"a share lasts at most {settings.share_max_days} days")
    return expires_at


def create(
    archive: Archive,
    principal: Principal,
    *,
    study_uids: Sequence[str],
    recipient_name: str,
    recipient_email: str,
    purpose: str,
    base_url: str,
    days: float | None = None,
    expires_at: float | None = None,
    may_download: bool = False,
    with_pin: bool = True,
) -> Created:
    """Share studies of one patient with one person; the link and PIN are returned once
    and only their hashes kept. A share without a PIN only where the trust allows it
    (``share_rules.require_pin_unless_allowed``). Audited per study (kind share, its
    detail's ``pin`` false for a share without one)."""
    share_rules.require_share(principal)
    recipient_name = " ".join(recipient_name.split())
    if not recipient_name or len(recipient_name) > 200:
        raise Conflict("name the recipient (at most 200 characters)")
    recipient_email = check_email(recipient_email)
    purpose = purpose.strip()
    if len(purpose) > 2000:
        raise Conflict("the purpose is at most 2000 characters")
    settings = archive.settings
    expiry = _expiry(settings, days=days, expires_at=expires_at)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    pin = pins.new() if with_pin else ""
    link = link_for(settings.public_url or base_url, token)
    assert principal.trust is not None and principal.user_pk is not None
    with begin_write(archive.engine) as conn:
        trust = trusts.get_trust(conn, principal.trust.code)  # as it is now, not at sign-in
        share_rules.require_pin_unless_allowed(trust, with_pin=with_pin)
        uids = sorted({u.strip() for u in study_uids if u.strip()})
        person_pk = _checked_studies(conn, principal, uids)
        share_pk = conn.execute(
            insert(shares)
            .values(
                token_hash=digest(token),
                owner_pk=principal.user_pk,
                trust_pk=principal.trust.pk,
                person_pk=person_pk or None,
                recipient_name=recipient_name,
                recipient_email=recipient_email,
                purpose=purpose,
                may_download=may_download,
                pin_hash=pins.hashed(pin) if pin else "",
                created_at=time.time(),
                expires_at=expiry,
            )
            .returning(shares.c.id)
        ).scalar_one()
        conn.execute(insert(share_studies), [{"share_pk": share_pk, "study_uid": u} for u in uids])
        share = get(conn, share_pk)
        for uid in uids:
            found = queries.patient_of_study(conn, uid, scope=EVERYTHING)
            touched = Touched(
                study_uid=uid,
                patient="" if found is None else found.ref,
                nhs_number="" if found is None else found.nhs_number,
            )
            detail = {
                "share": share_pk,
                "recipient": recipient_email,
                "expires_at": round(expiry),
                "download": may_download,
                "pin": bool(pin),
            }
            trail.record_in(
                conn, principal, audit.Kind.SHARE, audit.Outcome.SUCCESS, touched, detail
            )
    # sent now, not queued: a queued message would keep the token in the job table
    unsent = mail.send_now(
        settings,
        to=recipient_email,
        subject=f"Imaging shared with you for a second opinion by {share.trust_name}",
        body=_invitation(share, link),
    )
    return Created(share=share, link=link, pin=pin, unsent=unsent)


def _invitation(share: Share, link: str) -> str:
    until = time.strftime("%d %b %Y %H:%M UTC", time.gmtime(share.expires_at))
    pin = (
        "You will also need a PIN, which the sender will give you another way (by phone, for "
        "example). Five wrong PINs lock the link.\n\n"
        if share.has_pin
        else ""
    )
    return (
        f"Dear {share.recipient_name},\n\n"
        f"{share.owner_name} of {share.trust_name} has shared medical images with you and "
        "asks for your opinion. Open them in your browser (no account is needed):\n\n"
        f"{link}\n\n"
        f"The link works until {until}. {pin}"
        "Every opening and view is recorded. Please do not forward this email: the link "
        "is for you alone.\n\n"
        "This message was sent by rix, the regional imaging exchange.\n"
    )


def visible_to(conn: Connection, principal: Principal, *, limit: int = 200) -> list[Share]:
    """The shares ``principal`` manages, newest first (``access.share_rules.may_manage_share``)."""
    query = select_shares().where(share_rules.managed_shares(principal))
    rows = conn.execute(query.order_by(shares.c.id.desc()).limit(limit)).all()
    return [from_row(conn, r, with_opinions=True) for r in rows]


def managed(conn: Connection, principal: Principal, share_pk: int) -> Share:
    share = get(conn, share_pk, with_opinions=True)
    share_rules.require_manage_share(principal, owner_pk=share.owner_pk, trust_pk=share.trust_pk)
    return share


def revoke(archive: Archive, principal: Principal, share_pk: int) -> Share:
    """Close the link now: its open sessions lose every study at their next request."""
    with begin_write(archive.engine) as conn:
        share = managed(conn, principal, share_pk)
        if share.revoked_at is None:
            conn.execute(
                update(shares)
                .where(shares.c.id == share_pk)
                .values(revoked_at=time.time(), revoked_by=principal.name)
            )
            detail = {"share": share_pk, "revoked": True}
            trail.record_in(conn, principal, audit.Kind.SHARE, audit.Outcome.SUCCESS, None, detail)
        return get(conn, share_pk, with_opinions=True)


def views(archive: Archive, share: Share) -> list[audit.Event]:
    """Every recorded use of the link (open, PIN failure, view, download, opinion), from
    the audit trail itself: the list the owner sees is the record, not a copy of it."""
    return audit.search(archive.engine, actor=f"share:{share.pk}", limit=1000)
