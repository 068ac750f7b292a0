"""Second opinions: a link that opens chosen studies of one patient to one person outside
the region, for a limited time, with every look recorded.

The link is ``<public URL>/s#<token>``: 256 random bits of which only the SHA-256 is
stored. The token travels in the URL's fragment, which browsers never send to a server,
so it reaches no access log, proxy log or Referer header; the page's script posts it once
and takes it out of the address bar. The server exchanges it for a browser session of its
own (``share_sessions``, a 2-hour cookie holding another random secret, also stored
hashed), verified by the PIN first when the share has one. What that session may read is
decided by ``rix.access`` alone: the principal ``Principal.of_share`` sees exactly the
shared studies while the share is open, checked in SQL on every request, so expiry holds to
the second and a revocation stops a viewer already open.

The invitation is sent during the request, not queued like rix's other mail: a job would
keep the link in the index in clear until purged. The sender sees the link once and is
told when the email could not go. It carries the link, the sender's name and trust and the
expiry, and no patient identifier and not the purpose (which the sender writes freely and
may name the patient): the recipient reads both once the link is open.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Row, func, insert, select, update

from rix import access, audit
from rix.access import Principal, Touched
from rix.archive import Archive
from rix.auth.users import check_email
from rix.config import Settings
from rix.errors import AccessDenied, Conflict, NotFound, RixError
from rix.index import queries
from rix.index.database import begin_write
from rix.index.schema import (
    instances,
    series,
    share_opinions,
    share_sessions,
    share_studies,
    shares,
    studies,
    trusts,
    users,
)
from rix.ingest import sr
from rix.jobs import mail
from rix.region.trusts import Trust

TOKEN_BYTES = 32  # 256 bits
PIN_DIGITS = 6
MAX_PIN_FAILURES = 5
SESSION_SECONDS = 2 * 3600.0
MAX_STUDIES = 20
MAX_OPINION = 20_000
_pins = PasswordHasher()


class LinkClosed(RixError):
    """A link that no longer opens anything: expired, revoked, locked or never issued."""

    http_status = 410


class Locked(RixError):
    http_status = 423


@dataclass(frozen=True, slots=True, kw_only=True)
class Opinion:
    pk: int
    study_uid: str
    text: str
    key_images: list[str]
    sr_instance_uid: str
    created_at: float
    seen_at: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Share:
    pk: int
    owner_pk: int
    owner_name: str
    owner_email: str
    trust_pk: int
    trust_code: str
    trust_name: str
    recipient_name: str
    recipient_email: str
    purpose: str
    may_download: bool
    has_pin: bool
    pin_failures: int
    created_at: float
    expires_at: float
    locked_at: float | None
    revoked_at: float | None
    revoked_by: str
    study_uids: tuple[str, ...] = ()
    opinions: tuple[Opinion, ...] = field(default=())

    def state(self, now: float | None = None) -> str:
        """open, expired, revoked or locked: what the link does now."""
        if self.revoked_at is not None:
            return "revoked"
        if self.locked_at is not None:
            return "locked"
        if self.expires_at <= (time.time() if now is None else now):
            return "expired"
        return "open"

    def principal(self, source: str) -> Principal:
        """Who the link's holder is to the access policy: the share, of its trust."""
        trust = Trust(pk=self.trust_pk, code=self.trust_code, name=self.trust_name, issuer="")
        return Principal.of_share(self.pk, trust, self.may_download, source)


@dataclass(frozen=True, slots=True, kw_only=True)
class Created:
    share: Share
    link: str  # shown once to the sender; also mailed when SMTP is configured
    pin: str  # shown once to the sender, never stored in clear, never mailed
    unsent: str  # why the email did not go ('' when it did)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def link_for(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/s#{token}"


# --- creating and reading shares ---


def _select() -> Any:
    return (
        select(
            shares,
            users.c.display_name.label("owner_name"),
            users.c.email.label("owner_email"),
            trusts.c.code.label("trust_code"),
            trusts.c.name.label("trust_name"),
        )
        .join(users, users.c.id == shares.c.owner_pk)
        .join(trusts, trusts.c.id == shares.c.trust_pk)
    )


def _share(
    conn: Connection, row: Row[Any], *, with_opinions: bool = False, with_studies: bool = True
) -> Share:
    uids = (
        ()
        if not with_studies
        else conn.execute(
            select(share_studies.c.study_uid)
            .where(share_studies.c.share_pk == row.id)
            .order_by(share_studies.c.study_uid)
        ).scalars()
    )
    return Share(
        pk=row.id,
        owner_pk=row.owner_pk,
        owner_name=row.owner_name,
        owner_email=row.owner_email,
        trust_pk=row.trust_pk,
        trust_code=row.trust_code,
        trust_name=row.trust_name,
        recipient_name=row.recipient_name,
        recipient_email=row.recipient_email,
        purpose=row.purpose,
        may_download=bool(row.may_download),
        has_pin=bool(row.pin_hash),
        pin_failures=row.pin_failures,
        created_at=row.created_at,
        expires_at=row.expires_at,
        locked_at=row.locked_at,
        revoked_at=row.revoked_at,
        revoked_by=row.revoked_by,
        study_uids=tuple(uids),
        opinions=tuple(opinions_of(conn, row.id)) if with_opinions else (),
    )


def get(conn: Connection, share_pk: int, *, with_opinions: bool = False) -> Share:
    row = conn.execute(_select().where(shares.c.id == share_pk)).first()
    if row is None:
        raise NotFound("no such share")
    return _share(conn, row, with_opinions=with_opinions)


def _checked_studies(conn: Connection, principal: Principal, uids: Sequence[str]) -> int:
    """The shared studies must all be visible to the sender and of one person (a share is
    one patient's); returns the person they belong to (0: a record with no person)."""
    if not uids:
        raise Conflict("choose at least one study to share")
    if len(uids) > MAX_STUDIES:
        raise Conflict(f"a share holds at most {MAX_STUDIES} studies")
    query = select(studies.c.study_uid, studies.c.person_pk, studies.c.patient_pk).where(
        studies.c.study_uid.in_(uids)
    )
    scope = access.scope(principal)
    if scope is not None:
        query = query.where(scope)
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
    with_pin: bool = False,
) -> Created:
    """Share studies of one patient with one person; the link and PIN are returned once
    and only their hashes kept. Audited per study (kind share)."""
    access.require_share(principal)
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
    pin = "".join(secrets.choice("0123456789") for _ in range(PIN_DIGITS)) if with_pin else ""
    link = link_for(settings.public_url or base_url, token)
    assert principal.trust is not None and principal.user_pk is not None
    with begin_write(archive.engine) as conn:
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
                pin_hash=_pins.hash(pin) if pin else "",
                created_at=time.time(),
                expires_at=expiry,
            )
            .returning(shares.c.id)
        ).scalar_one()
        conn.execute(insert(share_studies), [{"share_pk": share_pk, "study_uid": u} for u in uids])
        share = get(conn, share_pk)
        for uid in uids:
            found = queries.patient_of_study(conn, uid, scope=None)
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
            access.record_in(
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
    """The shares ``principal`` manages, newest first (``access.may_manage_share``)."""
    query = _select().where(access.managed_shares(principal))
    rows = conn.execute(query.order_by(shares.c.id.desc()).limit(limit)).all()
    return [_share(conn, r, with_opinions=True) for r in rows]


def managed(conn: Connection, principal: Principal, share_pk: int) -> Share:
    share = get(conn, share_pk, with_opinions=True)
    access.require_manage_share(principal, owner_pk=share.owner_pk, trust_pk=share.trust_pk)
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
            access.record_in(conn, principal, audit.Kind.SHARE, audit.Outcome.SUCCESS, None, detail)
        return get(conn, share_pk, with_opinions=True)


def views(archive: Archive, share: Share) -> list[audit.Event]:
    """Every recorded use of the link (open, PIN failure, view, download, opinion), from
    the audit trail itself: the list the owner sees is the record, not a copy of it."""
    return audit.search(archive.engine, actor=f"share:{share.pk}", limit=1000)


# --- the recipient's side ---


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
        row = conn.execute(_select().where(shares.c.token_hash == digest(token))).first()
        share = None if row is None or not token else _share(conn, row)
        refusal = _refusal(share)
        if share is None or refusal is not None:
            principal = (
                share.principal(source)
                if share is not None
                else Principal(kind=access.PrincipalKind.SHARE, name="share:?", source=source)
            )
            reason = "unknown link" if refusal is None else refusal.reason
            detail: dict[str, Any] = {"via": "share-link", "reason": reason}
            access.record_in(conn, principal, audit.Kind.LOGIN, audit.Outcome.REFUSED, None, detail)
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
            access.record_in(
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
        _select()
        .add_columns(share_sessions.c.verified)
        .join(share_sessions, share_sessions.c.share_pk == shares.c.id)
        .where(
            share_sessions.c.secret_hash == digest(secret),
            share_sessions.c.expires_at > time.time(),
        )
    ).first()
    if row is None:
        return None
    share = _share(conn, row, with_studies=with_studies)
    if share.state() != "open":
        return None
    return Session(share=share, verified=bool(row.verified))


def check_pin(archive: Archive, secret: str, pin: str, source: str) -> Share:
    """Verify the PIN for a session; the fifth wrong one locks the share and tells its
    owner. Each failure is audited, and counted in the share, not the session, so a new
    session does not reset the count."""
    with begin_write(archive.engine) as conn:
        found = session_of(conn, secret)
        if found is None:
            raise LinkClosed("this session has ended: open the link again")
        share = found.share
        row = conn.execute(select(shares.c.pin_hash).where(shares.c.id == share.pk)).first()
        assert row is not None
        if not row.pin_hash or _pin_matches(row.pin_hash, pin.strip()):
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
        access.record_in(conn, principal, audit.Kind.LOGIN, audit.Outcome.REFUSED, None, detail)
        if locking:
            _locked(conn, archive.settings, share, principal)
    if locking:
        raise Locked("too many wrong PINs: this link is now locked; the sender has been told")
    left = MAX_PIN_FAILURES - failures
    raise AccessDenied(f"wrong PIN: {left} {'try' if left == 1 else 'tries'} left")


def _pin_matches(pin_hash: str, pin: str) -> bool:
    try:
        return _pins.verify(pin_hash, pin)
    except (VerificationError, InvalidHashError):
        return False


def _locked(conn: Connection, settings: Settings, share: Share, principal: Principal) -> None:
    """The owner is alerted: audited as a refused share event (the status page and the
    audit export show refusals) and by email when the owner has an address."""
    detail = {"share": share.pk, "locked": True, "failures": MAX_PIN_FAILURES}
    access.record_in(conn, principal, audit.Kind.SHARE, audit.Outcome.REFUSED, None, detail)
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


def end_session(archive: Archive, secret: str) -> None:
    with begin_write(archive.engine) as conn:
        conn.execute(
            update(share_sessions)
            .where(share_sessions.c.secret_hash == digest(secret))
            .values(expires_at=time.time())
        )


# --- the opinion sent back ---


def key_images(conn: Connection, study_uid: str, spec: str) -> list[sr.Reference]:
    """``spec`` names images as people read them off the viewer: ``series/image`` numbers,
    comma-separated (``3/45, 3/50``); each must exist in the study."""
    found: list[sr.Reference] = []
    for part in [p.strip() for p in spec.replace(";", ",").split(",") if p.strip()][:50]:
        series_text, slash, image_text = part.partition("/")
        if not slash or not series_text.strip().isdigit() or not image_text.strip().isdigit():
            raise Conflict(f"{part[:40]!r}: name key images as series/image, e.g. 3/45")
        row = conn.execute(
            select(instances.c.sop_uid, instances.c.sop_class_uid, series.c.series_uid)
            .join(series, series.c.id == instances.c.series_pk)
            .join(studies, studies.c.id == series.c.study_pk)
            .where(
                studies.c.study_uid == study_uid,
                series.c.series_number == int(series_text),
                instances.c.instance_number == int(image_text),
            )
            .limit(1)
        ).first()
        if row is None:
            raise Conflict(f"there is no image {part} in this study")
        found.append(
            sr.Reference(
                sop_class_uid=row.sop_class_uid,
                sop_instance_uid=row.sop_uid,
                series_uid=row.series_uid,
            )
        )
    return found


def add_opinion(
    archive: Archive, session: Session, *, study_uid: str, text: str, key_spec: str, source: str
) -> Opinion:
    """Store the recipient's opinion with the study as a Basic Text SR (so it travels with
    the images to any PACS) and tell the sender. The SR is written by rix on the share's
    behalf, not by the share: the recipient's own access stays read-only."""
    share = session.share
    if study_uid not in share.study_uids:
        raise AccessDenied("this study is not part of the share")
    text = text.strip()
    if not text:
        raise Conflict("write your opinion first")
    if len(text) > MAX_OPINION:
        raise Conflict(f"an opinion is at most {MAX_OPINION} characters")
    with archive.engine.connect() as conn:
        images = key_images(conn, study_uid, key_spec)
        document = sr.text_document(
            conn,
            study_uid=study_uid,
            text=text,
            author=share.recipient_name.replace(" ", "^", 1)[:64],
            organisation=f"Second opinion for {share.trust_name}"[:64],
            final=False,
            series_description="Second opinion",
            title=sr.OPINION_TITLE,
            key_images=images,
        )
    sr.store(archive, document, source="share")
    principal = share.principal(source)
    with begin_write(archive.engine) as conn:
        pk = conn.execute(
            insert(share_opinions)
            .values(
                share_pk=share.pk,
                study_uid=study_uid,
                text=text,
                key_images=json.dumps([i.sop_instance_uid for i in images]),
                sr_instance_uid=str(document.SOPInstanceUID),
                created_at=time.time(),
            )
            .returning(share_opinions.c.id)
        ).scalar_one()
        found = queries.patient_of_study(conn, study_uid, scope=None)
        touched = Touched(
            study_uid=study_uid,
            patient="" if found is None else found.ref,
            nhs_number="" if found is None else found.nhs_number,
        )
        detail = {"share": share.pk, "opinion": pk, "key_images": len(images)}
        access.record_in(conn, principal, audit.Kind.STORE, audit.Outcome.SUCCESS, touched, detail)
        mail.enqueue(
            conn,
            archive.settings,
            to=share.owner_email,
            subject="A second opinion has arrived",
            body=(
                f"Dear {share.owner_name},\n\n{share.recipient_name} has sent their opinion on "
                f"share {share.pk}. Read it in rix under Shares; it is also stored with the "
                "study as a structured report.\n\nrix\n"
            ),
            trust_pk=share.trust_pk,
        )
        return _opinions(conn, share_opinions.c.id == pk)[0]


def opinions_of(conn: Connection, share_pk: int) -> list[Opinion]:
    return _opinions(conn, share_opinions.c.share_pk == share_pk)


def _opinions(conn: Connection, where: Any) -> list[Opinion]:
    rows = conn.execute(select(share_opinions).where(where).order_by(share_opinions.c.id)).all()
    return [
        Opinion(
            pk=r.id,
            study_uid=r.study_uid,
            text=r.text,
            key_images=json.loads(r.key_images),
            sr_instance_uid=r.sr_instance_uid or "",
            created_at=r.created_at,
            seen_at=r.seen_at,
        )
        for r in rows
    ]


def mark_seen(conn: Connection, share: Share) -> None:
    """The owner has read the share's opinions: the portal's "new opinion" marker goes."""
    conn.execute(
        update(share_opinions)
        .where(share_opinions.c.share_pk == share.pk, share_opinions.c.seen_at.is_(None))
        .values(seen_at=time.time())
    )


def unseen_opinions(conn: Connection, principal: Principal) -> int:
    """Opinions on the user's own shares they have not opened yet (the nav's badge)."""
    if principal.user_pk is None:
        return 0
    return int(
        conn.execute(
            select(func.count())
            .select_from(share_opinions)
            .join(shares, shares.c.id == share_opinions.c.share_pk)
            .where(shares.c.owner_pk == principal.user_pk, share_opinions.c.seen_at.is_(None))
        ).scalar_one()
    )
